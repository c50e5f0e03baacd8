#!/usr/bin/env bash
# vLLM 0.24.0 for the offline GPU machine, in uploads it can take (jobs/vllm/README.md,
# "vLLM on a GPU"). vllm 0.24.0 is the last vLLM that pins the machine's torch
# (2.11.0); its wheel alone is 279 MB and one upload carries at most 64 MiB, so the wheels
# travel as one tar split into parts, one part per device call, joined there.
#
#   bash benchmarks/vllm_wheels.sh [--full] [--dry-run] [--part-bytes N]
#
# Fetches (pip download --no-deps, cp312 manylinux) the pinned wheels below: vllm and every
# requirement the GPU machine lacks (its packages: /work/.library/device/KINDS.md), closed
# over their own requirements, resolved on 2026-12-05. xgrammar is held at 0.2.3: vllm 0.24.0
# pins apache-tvm-ffi==0.1.9 and xgrammar >= 0.2.6 needs tvm-ffi >= 0.1.10 (0.2.9 failed there:
# `load_lib_module() got an unexpected keyword argument 'extra_lib_paths'`). `core` (~400 MB, 7 parts) leaves out
# flashinfer-cubin and the optional kernel packages (`full`, 452 MB more: MLA and Mamba
# kernels, CuTe DSL, tilelang, pip's own nvcc) that a Llama-type model on an H200 does not
# import; --full adds them (14 parts). Writes .vllm/partN/vllm.tar.NN (each <= 60 MB) and
# .vllm/partLAST/SHA256SUMS, and prints the device calls. .vllm/ is git-ignored through
# .git/info/exclude. --dry-run prints what would be fetched and the parts, and fetches nothing.
set -euo pipefail
full=0 dry=0 part_bytes=60000000
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --dry-run) dry=1 ;;
    --part-bytes) part_bytes="$2"; shift ;;
    *) echo "vllm_wheels.sh: unknown argument '$1' (use --full, --dry-run, --part-bytes N)" >&2
       exit 2 ;;
  esac
  shift
done
cd "$(git rev-parse --show-toplevel)"
dest=.vllm
# tier, requirement, wheel size in bytes (as downloaded when the list was made)
LOCK=$(cat <<'EOF'
core agent-detector==2.0.0                            9352
core annotated-types==0.8.0                           13427
core anthropic==2.17.0                                2889194
core apache-tvm-ffi==0.1.9                            2278991
core astor==0.8.1                                     27488
core blake3==1.0.11                                   381348
core cachetools==8.0.2                                19334
core cbor2==6.3.0                                     473147
core cffi==2.1.1                                      221822
core compressed-tensors==0.17.0                       211714
core cryptography==50.0.2                             4753050
core cuda-python==13.4.4                              7594
core cuda-tile==1.7.0                                 426980
core depyf==0.20.0                                    39381
core detect-installer==0.2.1                          5371
core dill==0.4.1                                      120019
core diskcache==5.6.3                                 45550
core dnspython==2.9.2                                 360455
core docstring-parser==0.18.0                         22484
core email-validator==2.4.0                           36810
core fastapi-cli==0.0.34                              14472
core fastapi-cloud-cli==0.28.0                        109934
core fastapi==0.136.3                                 117481
core fastar==0.12.0                                   808091
core fastsafetensors==0.5.0                           2731897
core flashinfer-python==0.6.12                        13985243
core googleapis-common-protos==1.76.0                 307707
core httpcore2==2.17.0                                86100
core httptools==0.9.0                                 552848
core httpx2==2.17.0                                   100259
full humming-kernels==0.1.6                           178759
core ijson==3.6.0                                     150188
core interegular==0.3.3                               23635
core jiter==0.19.0                                    338071
core jmespath==1.1.0                                  20419
core jsonschema-specifications==2025.9.1              18437
core jsonschema==4.26.0                               90630
core lark==1.2.2                                      111036
core llguidance==1.7.6                                3074809
core lm-format-enforcer==0.11.3                       45418
core loguru==0.7.3                                    61595
core mcp-types==2.3.0                                 69108
core mcp==2.3.0                                       368664
core mistral-common==1.13.1                           6589302
core model-hosting-container-standards==0.1.16        125666
core msgspec==0.23.0                                  236624
full nvidia-cuda-cccl==13.3.5.0.6                     4113651
full nvidia-cuda-crt==13.5.37                         166163
full nvidia-cuda-nvcc==13.5.37                        47028279
core nvidia-cudnn-frontend==1.32.0                    11619860
full nvidia-cutlass-dsl-libs-base==4.5.2              74513226
full nvidia-cutlass-dsl-libs-cu13==4.5.2              78759198
full nvidia-cutlass-dsl==4.5.2                        10179
full nvidia-nvvm==13.5.37                             75141406
core openai-harmony==0.0.8                            2953260
core openai==3.63.0                                   2483418
core opentelemetry-api==1.45.3                        60336
core opentelemetry-exporter-http-transport==0.66b2    12154
core opentelemetry-exporter-otlp-common==0.66b2       12385
core opentelemetry-exporter-otlp-proto-common==1.45.2 15392
core opentelemetry-exporter-otlp-proto-grpc==1.45.2   19490
core opentelemetry-exporter-otlp-proto-http==1.45.2   22180
core opentelemetry-exporter-otlp==1.45.2              6732
core opentelemetry-proto==1.45.2                      72484
core opentelemetry-sdk==1.45.2                        141756
core opentelemetry-semantic-conventions-ai==0.5.1     11250
core opentelemetry-semantic-conventions==0.66b2       206280
core outlines-core==0.2.14                            2341426
core partial-json-parser==0.2.1.1.post7               10877
core prometheus-fastapi-instrumentator==8.1.0         19649
core pybase64==1.5.1                                  94689
core pycountry==26.2.16                               8044600
core pycparser==3.12                                  62600
core pydantic-core==2.50.5                            2264846
core pydantic-extra-types==2.11.1                     79526
core pydantic-settings==2.16.3                        82679
core pydantic==2.14.4                                 494865
core pyelftools==0.33                                 201178
core pyjwt==2.15.1                                    33860
core python-dotenv==1.2.4                             23266
core python-json-logger==4.2.0                        14988
core python-multipart==0.0.34                         32585
core pyzmq==27.3.0                                    855178
full quack-kernels==0.6.5                             729615
core referencing==0.37.0                              26766
core rich-toolkit==0.20.6                             39466
core rignore==0.8.1                                   927835
core rpds-py==2026.9.1                                371261
core sentry-sdk==2.76.0                               555933
core setproctitle==1.3.8                              32929
core sniffio==1.3.1                                   10235
core sse-starlette==3.7.1                             18969
core starlette==1.10.0                                80571
core supervisor==4.3.0                                320736
full tilelang==0.1.9                                  45419374
full tokenspeed-mla==0.1.2                            748681
full tokenspeed-triton==3.9.10.post20261028           94857970
core torch-c-dlpack-ext==0.1.5                        897846
core truststore==0.10.5                               19017
core typing-inspection==0.4.5                         14874
core uvicorn==0.55.0                                  87457
core vllm==0.24.0                                     279209310
core watchfiles==1.3.0                                458353
core websockets==17.4                                 226321
core xgrammar==0.2.3                                  44855110
full z3-solver==4.15.4.0                              29268352
EOF
)
if [ "$full" = 1 ]; then wanted=$(echo "$LOCK" | awk '{print $2, $3}')
else wanted=$(echo "$LOCK" | awk '$1 == "core" {print $2, $3}'); fi
count=$(echo "$wanted" | wc -l)
bytes=$(echo "$wanted" | awk '{s += $2} END {print s}')
parts=$(( (bytes + part_bytes - 1) / part_bytes ))
echo "vllm_wheels: $count wheels, $((bytes / 1000000)) MB, about $parts parts of <= $part_bytes bytes" \
  "($([ "$full" = 1 ] && echo full || echo core))"
if [ "$dry" = 1 ]; then
  echo "$wanted" | awk '{printf "  would fetch %-48s %8.1f MB\n", $1, $2 / 1e6}'
  echo "  into $dest/wheels, then $dest/part1 .. $dest/part$parts (tar split -b $part_bytes)"
  exit 0
fi
grep -qxF "/$dest/" .git/info/exclude 2>/dev/null || echo "/$dest/" >> .git/info/exclude
avail=$(df -Pk . | awk 'NR == 2 {printf "%.0f", $4 * 1024}')
if [ "$avail" -lt $(( bytes * 3 )) ]; then
  echo "vllm_wheels: $((avail / 1000000)) MB free here, $((bytes * 3 / 1000000)) MB needed" \
    "(wheels, tar and parts); free some disk first" >&2
  exit 2
fi
rm -rf "$dest" && mkdir -p "$dest/wheels"
plat=()
for n in 17 24 27 28 31 34 35 39; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# shellcheck disable=SC2046
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${plat[@]}" -d "$dest/wheels" $(echo "$wanted" | awk '{print $1}')
got=$(find "$dest/wheels" -name '*.whl' | wc -l)
[ "$got" -eq "$count" ] || { echo "vllm_wheels: $got wheels fetched, $count expected" >&2; exit 1; }
tar -cf "$dest/vllm.tar" -C "$dest" wheels
split -b "$part_bytes" -d -a 2 "$dest/vllm.tar" "$dest/vllm.tar."
n=0
for f in "$dest"/vllm.tar.[0-9][0-9]; do
  n=$((n + 1)); mkdir -p "$dest/part$n"; mv "$f" "$dest/part$n/"
done
(cd "$dest" && sha256sum part*/vllm.tar.* && sha256sum vllm.tar | sed 's| vllm.tar| /tmp/vllm.tar|') \
  > "$dest/SHA256SUMS"
mv "$dest/SHA256SUMS" "$dest/part$n/SHA256SUMS"
rm -rf "$dest/wheels" "$dest/vllm.tar"
du -sh "$dest"/part* | sed 's/^/  /'
cat <<CALLS
Device calls, back to back (a held machine goes back after 30 s idle; a call's carried
paths are gone there at the next call, so each part is kept in /tmp/vllm-parts):
  run(carry=[".vllm/part1"], command="bash benchmarks/vllm_install.sh keep")  ... up to part$((n - 1))
  run(carry=[".vllm/part$n"], command=". benchmarks/vllm_install.sh && python3 -m benchmarks.gpu_vllm")
CALLS
