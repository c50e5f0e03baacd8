# On the GPU machine: vLLM's wheels arrive one part per device call (benchmarks/vllm_wheels.sh
# made them), and a call's carried paths are removed there by the next call, so each part is
# kept outside the checkout (/tmp/vllm-parts) as it arrives:
#   bash benchmarks/vllm_install.sh keep                       # the calls carrying part1 .. N-1
#   . benchmarks/vllm_install.sh && python3 -m benchmarks.gpu_vllm   # the call carrying part N
# Sourced without `keep`: keeps the carried part, joins the parts, checks them against
# SHA256SUMS, installs the wheels into LLEM_VLLM_SITE (default /tmp/site) and puts it (and the
# checkout) on PYTHONPATH. A later call on the same held machine finds it installed and only
# sets PYTHONPATH. Returns non-zero, naming the missing or corrupt part, instead of installing
# half of vLLM.
vllm_keep() {
  mkdir -p /tmp/vllm-parts || return 1
  if ls -d .vllm/part* >/dev/null 2>&1; then cp -r .vllm/part* /tmp/vllm-parts/ || return 1; fi
  echo "vllm parts kept here: $(ls /tmp/vllm-parts | tr '\n' ' ')"
}

vllm_install() {
  local sums want have site="${LLEM_VLLM_SITE:-/tmp/site}" parts=/tmp/vllm-parts
  if [ -f "$site/.llem-vllm-installed" ]; then
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    return
  fi
  vllm_keep || return 1
  sums=$(ls "$parts"/part*/SHA256SUMS 2>/dev/null | head -1)
  [ -n "$sums" ] || { echo "vllm_install: no partN/SHA256SUMS: carry the last part" >&2; return 1; }
  want=$(grep -c ' part' "$sums"); have=$(ls "$parts"/part*/vllm.tar.* 2>/dev/null | wc -l)
  if [ "$have" -ne "$want" ]; then
    echo "vllm_install: $have of $want parts here ($(ls "$parts" | tr '\n' ' ')):" \
      "the machine was given back between calls; send every part again, back to back" >&2
    return 1
  fi
  (cd "$parts" && grep ' part' "$sums" | sha256sum -c --quiet -) || {
    echo "vllm_install: a part's checksum differs: run benchmarks/vllm_wheels.sh again" >&2; return 1; }
  # in the order split wrote them (vllm.tar.00, .01, ...), not part1, part10, part2
  ls "$parts"/part*/vllm.tar.* | awk -F/ '{print $NF, $0}' | sort | cut -d' ' -f2 \
    | xargs cat > /tmp/vllm.tar
  grep ' /tmp/vllm.tar' "$sums" | sha256sum -c --quiet - || {
    echo "vllm_install: the joined tar's checksum differs" >&2; return 1; }
  rm -rf /tmp/vllm-wheels && mkdir -p /tmp/vllm-wheels && tar -xf /tmp/vllm.tar -C /tmp/vllm-wheels \
    && rm -f /tmp/vllm.tar || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" /tmp/vllm-wheels/wheels/*.whl || return 1
  touch "$site/.llem-vllm-installed"
  export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c "import vllm, torch, xgrammar; print('vllm', vllm.__version__, 'torch', torch.__version__)"
}

if [ "${1:-}" = keep ]; then vllm_keep; else vllm_install; fi
