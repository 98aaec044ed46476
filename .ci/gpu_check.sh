#!/usr/bin/env bash
# GPU checks run on a lent GPU machine (not part of CI): precision presets and throughput.
# Usage: bash .ci/gpu_check.sh OUTDIR   (expects stiffml importable, e.g. PYTHONPATH)
set -uo pipefail
out=${1:-/tmp/gpu}
mkdir -p "$out"
export STIFFML_CACHE_DIR="$out/cache"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
for preset in gpu32 gpu_bf16 gpu16_mixed; do
  for cfg in bz_fcnn bz_attenlstm; do
    echo "=== $cfg + $preset"
    /usr/bin/time -f "wall %e s" stiffml fit --config configs/$cfg.yaml --config configs/trainer/$preset.yaml \
      --trainer.max_epochs 2 --trainer.default_root_dir "$out/$cfg-$preset" --trainer.enable_progress_bar false \
      --rollout.max_steps 20000 2>&1 | grep -E "error|Error|final free run|trainable|stopped|wall" 
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
  --trainer.max_epochs 1 --trainer.default_root_dir "$out/ddp" --trainer.enable_progress_bar false 2>&1 | grep -E "error|Error|stopped|DDP|distributed"
echo "=== throughput (second epoch, validation off)"
for cfg in bz_fcnn bz_attenlstm; do
  for preset in gpu32 gpu_bf16; do
    python3 bench/throughput.py --config configs/$cfg.yaml --config configs/trainer/$preset.yaml --root "$out/tp" 2>&1 | grep "steps/s"
  done
done
