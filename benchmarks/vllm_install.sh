# On the GPU machine, in the call that carries the last part (benchmarks/vllm_wheels.sh made
# them): join .vllm/part*/vllm.tar.NN, check them against SHA256SUMS, install the wheels into
# /tmp/site and put it (and the checkout) on PYTHONPATH. Sourced, so PYTHONPATH stays set:
#   . benchmarks/vllm_install.sh && python3 -m benchmarks.gpu_vllm
# LLEM_VLLM_SITE (default /tmp/site) is where it installs; a later call on the same held
# machine with the same LLEM_VLLM_SITE finds it installed and only sets PYTHONPATH.
# Returns non-zero, naming the missing or corrupt part, instead of installing half of vLLM.
vllm_install() {
  local sums want have site="${LLEM_VLLM_SITE:-/tmp/site}"
  if [ -f "$site/.llem-vllm-installed" ]; then  # an earlier call on this held machine did it
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    return
  fi
  sums=$(ls "$PWD"/.vllm/part*/SHA256SUMS 2>/dev/null | head -1)
  [ -n "$sums" ] || { echo "vllm_install: no .vllm/partN/SHA256SUMS: carry the last part" >&2; return 1; }
  want=$(grep -c ' part' "$sums"); have=$(ls .vllm/part*/vllm.tar.* 2>/dev/null | wc -l)
  if [ "$have" -ne "$want" ]; then
    echo "vllm_install: $have of $want parts here ($(ls -d .vllm/part* | tr '\n' ' ')):" \
      "the machine was given back between calls; send every part again, back to back" >&2
    return 1
  fi
  (cd .vllm && grep ' part' "$sums" | sha256sum -c --quiet -) || {
    echo "vllm_install: a part's checksum differs: run benchmarks/vllm_wheels.sh again" >&2; return 1; }
  # in the order split wrote them (vllm.tar.00, .01, ...), not part1, part10, part2
  ls .vllm/part*/vllm.tar.* | awk -F/ '{print $NF, $0}' | sort | cut -d' ' -f2 \
    | xargs cat > /tmp/vllm.tar
  grep ' /tmp/vllm.tar' "$sums" | sha256sum -c --quiet - || {
    echo "vllm_install: the joined tar's checksum differs" >&2; return 1; }
  rm -rf /tmp/vllm-wheels && mkdir -p /tmp/vllm-wheels && tar -xf /tmp/vllm.tar -C /tmp/vllm-wheels \
    && rm -f /tmp/vllm.tar || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" /tmp/vllm-wheels/wheels/*.whl || return 1
  touch "$site/.llem-vllm-installed"
  export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
}
vllm_install
