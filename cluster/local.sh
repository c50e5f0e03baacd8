#!/usr/bin/env bash
# A multi-node Ray cluster on ONE machine, for trying llem's scheduling without a cluster:
# a head and N workers, each a separate raylet with the GPUs and resources you declare.
# Declared GPUs are bookkeeping only: on a machine without GPUs, jobs run on the CPU
# (transformers: {device_map: cpu}) or use the null backend `noop`.
#
#   cluster/local.sh start            # head + 2 workers (2 GPUs each, accelerator_type L4/H100)
#   llem submit configs/demo.yaml --address http://127.0.0.1:8265 --store "$PWD/results"
#   llem run configs/demo.yaml --address 127.0.0.1:6379      # or a driver on this machine
#   cluster/local.sh stop
#
# What to change: WORKERS, GPUS_PER_WORKER and the --resources/--labels lines below.
# Runtime environments of jobs/: workers start from THIS shell's Python, so the backends in
# the driver's venv (transformers, noop) work as they are; for vLLM run `llem env build vllm`
# first (the venv under ~/.cache/llem/envs is on the same disk, py_executable finds it).
set -euo pipefail

RAY="${RAY:-ray}"                     # the ray of the venv llem is installed in
PORT="${PORT:-6379}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
WORKERS="${WORKERS:-2}"
GPUS_PER_WORKER="${GPUS_PER_WORKER:-2}"
TMP="${TMP_DIR:-/tmp/llem-ray}"
# Ray 2.60 turns token auth on by default; a local trial cluster does without it.
# Remove this line to keep it on (then export RAY_AUTH_MODE=token for llem submit/status).
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"

start() {
  # The head takes no GPU jobs (0 GPUs) and runs the dashboard; llem's driver lands here.
  "$RAY" start --head --port="$PORT" --num-cpus=2 --num-gpus=0 \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
    --metrics-export-port=8080 --temp-dir="$TMP" --disable-usage-stats
  for i in $(seq 1 "$WORKERS"); do
    # Odd workers look like H100 nodes, even ones like L4 nodes: resources.accelerator_type
    # and resources.custom ({fast: 1}) in a grid then pick where jobs go.
    if (( i % 2 )); then accel=H100; extra=', "fast": 2'; else accel=L4; extra=''; fi
    "$RAY" start --address="127.0.0.1:$PORT" --num-cpus=1 --num-gpus="$GPUS_PER_WORKER" \
      --resources="{\"accelerator_type:$accel\": 1$extra}" \
      --labels="llem/gpu=$accel" --metrics-export-port=$((8080 + i)) --disable-usage-stats
  done
  "$RAY" status --address="127.0.0.1:$PORT" || true
  echo "dashboard: http://127.0.0.1:$DASHBOARD_PORT   (Jobs, Actors and Metrics tabs)"
}

stop() {
  # Stops every Ray process started by this user on this machine.
  "$RAY" stop --force
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
