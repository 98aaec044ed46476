"""Count host-device syncs during one training epoch on a GPU (torch's sync debug mode).

    python bench/sync_probe.py configs/bz_fcnn.yaml

Prints the number of synchronising calls in the second epoch (800 steps for the B-Z configs)
and where they come from. Needs a CUDA device.
"""
import sys, warnings, torch, lightning.pytorch as pl
from stiffml.commands.cli import StiffCLI
class Probe(pl.Callback):
    def on_train_epoch_start(self, trainer, m):
        if trainer.current_epoch == 1:
            torch.cuda.set_sync_debug_mode(1)
    def on_train_epoch_end(self, trainer, m):
        torch.cuda.set_sync_debug_mode(0)
cfg = sys.argv[1]
cli = StiffCLI(args=["--config", cfg, "--config", "configs/trainer/gpu32.yaml", "--trainer.max_epochs=2", "--trainer.limit_val_batches=0", "--checkpoint.every_n_epochs=0", "--last_checkpoint.every_n_epochs=0", "--trainer.default_root_dir=/tmp/sp", "--trainer.enable_progress_bar=false", "--rollout.length=10"], run=False)
cli.trainer.callbacks.append(Probe())
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    cli.trainer.fit(cli.model, cli.datamodule)
syncs = [w for w in rec if "synchroniz" in str(w.message).lower()]
print(cfg, "sync warnings during epoch 2 (800 steps):", len(syncs))
import collections
print(collections.Counter(f"{w.filename.split('site-packages/')[-1]}:{w.lineno}" for w in syncs).most_common(8))
