#!/usr/bin/env bash
# vLLM's own serving benchmark (`vllm bench serve`) against `vllm serve`, at the server level
# benchmarks/gpu_vllm.py measures through llem (concurrency 256, random-0.8b, 109 input and
# 128 output tokens, the same engine arguments), so llem's server client is compared with
# vLLM's. Run on the GPU machine after gpu_vllm (which builds the model and installs vLLM):
#   . benchmarks/vllm_install.sh && bash benchmarks/vllm_serve_native.sh
set -u
model="${LLEM_MODEL_DIR:-$HOME/.cache/llem/random-0.8b-v1}" port=8011 out="${OUT:-/tmp}"
python3 -m vllm.entrypoints.openai.api_server --model "$model" --host 127.0.0.1 --port $port \
  --dtype bfloat16 --gpu-memory-utilization 0.4 --max-num-seqs 256 > "$out/vllm_serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { tail -20 "$out/vllm_serve.log"; exit 1; }
  sleep 1
done
python3 -m vllm.entrypoints.cli.main bench serve --backend vllm \
  --base-url "http://127.0.0.1:$port" --model "$model" --dataset-name random \
  --random-input-len 109 --random-output-len 128 --random-range-ratio 0 --ignore-eos \
  --num-prompts "${PROMPTS:-2560}" --max-concurrency 256 --seed 0 \
  --save-result --result-dir "$out" --result-filename vllm_bench_serve.json
