#!/usr/bin/env bash
# GPU checks run on a lent GPU machine (not part of CI): precision presets and throughput.
# Usage: bash .ci/gpu_check.sh OUTDIR   (expects stiffml importable, e.g. PYTHONPATH)
set -euo pipefail  # any failing command fails the check
out=${1:-/tmp/gpu}
mkdir -p "$out"
export STIFFML_CACHE_DIR="$out/cache"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
for preset in gpu32 gpu_bf16 gpu16_mixed; do
  for cfg in bz_fcnn bz_attenlstm; do
    echo "=== $cfg + $preset"
    # the full log is kept; the summary lines are shown (grep finding none is not a failure)
    /usr/bin/time -f "wall %e s" stiffml fit --config configs/$cfg.yaml --config configs/trainer/$preset.yaml \
      --trainer.max_epochs 2 --trainer.default_root_dir "$out/$cfg-$preset" --trainer.enable_progress_bar false \
      --rollout.max_steps 20000 > "$out/$cfg-$preset.log" 2>&1
    grep -E "final free run|trainable|stopped|wall" "$out/$cfg-$preset.log" || true
    python3 - "$out/$cfg-$preset" <<'PY'
import sys, glob
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
(d,) = glob.glob(sys.argv[1] + "/lightning_logs/version_0")
a = EventAccumulator(d); a.Reload()
print({k: round(a.Scalars(k)[-1].value, 6) for k in ("train_loss", "val_loss", "val_rel_l2", "val_rollout_rel_l2") if k in a.Tags()["scalars"]})
PY
  done
done
echo "=== ddp preset on the single GPU"
stiffml fit --config configs/bz_fcnn.yaml --config configs/trainer/gpu32.yaml --config configs/trainer/ddp.yaml \
  --trainer.max_epochs 1 --trainer.default_root_dir "$out/ddp" --trainer.enable_progress_bar false > "$out/ddp.log" 2>&1
grep -E "stopped|DDP|distributed" "$out/ddp.log" || true
echo "=== throughput (second epoch, validation off)"
for cfg in bz_fcnn bz_attenlstm; do
  for preset in gpu32 gpu_bf16; do
    python3 bench/throughput.py --config configs/$cfg.yaml --config configs/trainer/$preset.yaml --root "$out/tp" \
      > "$out/tp-$cfg-$preset.log" 2>&1
    grep "steps/s" "$out/tp-$cfg-$preset.log"
  done
done
