#!/usr/bin/env bash
# Paper Tables 1 and 2 on one lent GPU machine, every run under the same training-time budget.
#
# The lent machine gives a session about 30 minutes and one command at most 10, so the two
# suites run in the background (a new process session) across several commands:
#   bash bench/gpu_tables.sh start OUTROOT MAX_TIME   # install, then launch both suites (8 jobs each)
#   bash bench/gpu_tables.sh wait OUTROOT SECONDS     # progress every minute; returns when done or after SECONDS
#   bash bench/gpu_tables.sh pack OUTROOT TARBALL     # results without checkpoints and CSV copies
# MAX_TIME is Lightning's Trainer.max_time (DD:HH:MM:SS); each run then validates, runs its free
# run over the whole series and writes its predictions, as in `stiffml benchmark` anywhere.
# Expects the wheels of packages the machine lacks in .whl/ (jsonargparse, docstring-parser,
# typeshed-client; see the device tool's notes). Solved trajectories may be carried in .gpucache/
# (a STIFFML_CACHE_DIR filled here) so that 16 runs do not each solve B-Z and VdP first.
set -uo pipefail
cmd=$1 root=$2
case $cmd in
start)
  max_time=$3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
  export STIFFML_CACHE_DIR=$PWD/.gpucache PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
  mkdir -p "$root"
  for suite in paper-table1 paper-table2; do
    setsid nohup stiffml benchmark --suite $suite --repeats 1 --jobs 8 --out "$root/$suite" -- \
      --config configs/trainer/gpu32.yaml --trainer.max_time "$max_time" >"$root/$suite.log" 2>&1 </dev/null &
  done
  sleep 5
  ;;
wait)
  end=$((SECONDS + $3))
  while ((SECONDS < end)); do
    n=$(ls "$root"/*/runs/*/seed*/result.json 2>/dev/null | wc -l)
    busy=$(pgrep -fc "stiffml benchmark" || true)
    echo "[$(date +%T)] finished runs: $n/16; benchmark processes: $busy; GPU $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
    ((busy == 0)) && break
    sleep $((end - SECONDS < 60 ? (end - SECONDS > 0 ? end - SECONDS : 1) : 60))
  done
  grep -hE "runs \(|Error|error:" "$root"/*.log | tail -20
  ;;
pack)
  tar -czf "$3" --exclude='*.ckpt' --exclude='predictions.csv' -C "$(dirname "$root")" "$(basename "$root")"
  ls -la "$3"
  ;;
*) echo "unknown command $cmd (start, wait, pack)"; exit 2 ;;
esac
