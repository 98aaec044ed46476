"""``stiffml fit|validate|test|predict``: LightningCLI over every registered model and datamodule.

Besides Lightning's own behaviour, the CLI
- stops a diverging run with an error (:class:`~stiffml.training.callbacks.StopOnDivergence`, ``--divergence.*``);
- resumes the newest run under the root folder with ``--ckpt_path last`` (same ``version_N``
  folder, curves continued, float64 weights restored without a float32 round trip);
- refuses to evaluate random weights (``--ckpt_path`` or ``--allow_untrained true``) and a
  checkpoint of another model class than the config names;
- writes checkpoints atomically and removes the run folder of a run that failed before its
  first step.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import lightning.pytorch as pl
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from stiffml import registry
from stiffml.commands.argv import check_argv
from stiffml.training.callbacks import StepCheckpoint, StopOnDivergence, last_good_checkpoint
from stiffml.training.checkpoints import AtomicCheckpointIO, checkpoint_model_class, find_resumable, load_checkpoint
from stiffml.data.base import SystemDataModule
from stiffml.data.petab import PEtabDataModule
from stiffml.errors import condense
from stiffml.evaluation.free_run import PredictionWriter, RolloutEvaluation, run_folder
from stiffml.training.experiment import run_experiment
from stiffml.models.base import StiffModel
from stiffml.models.mechanistic import MechanisticModel
from stiffml.models.sciml import SciMLModel

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")


class _DropAdvertising(logging.Filter):
    """Lightning prints a tip advertising its cloud logger at every run; users need none of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    if not any(isinstance(f, _DropAdvertising) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_DropAdvertising())
# a deprecation inside Lightning's own code (torch's pytree API), not actionable by users
warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\).*")


class StiffArgumentParser(LightningArgumentParser):
    """Prints a one-line error instead of usage text; exits 2 like jsonargparse's own. Option
    prefixes are not expanded (argparse's default would take ``--trainer.max_epoch`` for
    ``--trainer.max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:  # type: ignore[override]
        sys.stderr.write(f"stiffml: error: {condense(message)}\n")
        sys.exit(2)


class StiffCLI(LightningCLI):
    """LightningCLI in subclass mode over every registered model and datamodule, and over the
    calibration pair (:class:`MechanisticModel` on :class:`PEtabDataModule`).

    Defaults: TensorBoard logs under ``<default_root_dir>/lightning_logs/version_N``, last and
    best (``val_loss``) checkpoints, divergence stop, seed 0, and ``precision: 64-true`` on the
    CPU (``32-true`` on an accelerator) unless the trainer's precision is set.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        registry.load_all()  # import plugin classes so their short names resolve
        given = kwargs.get("args")
        self._given_args = [str(a) for a in (sys.argv[1:] if given is None else given)]
        self._resume_version: int | None = None
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_class", StiffArgumentParser)
        # the bases are Lightning's so that the calibration pair, which is not a model of a
        # system's trajectories, runs under the same CLI; before_instantiate_classes checks the pair
        super().__init__(pl.LightningModule, pl.LightningDataModule, *args, subclass_mode_model=True,
                         subclass_mode_data=True, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Two checkpoint callbacks: ModelCheckpoint's own save_last only refreshes last.ckpt in
        # steps where a top-k checkpoint is saved, so a run whose val_loss stops improving would
        # keep a stale "last". A monitor-less callback overwrites last.ckpt at every epoch end; a
        # third refreshes it every 5 minutes of training (--step_checkpoint.train_time_interval;
        # or every N steps instead, --step_checkpoint.every_n_train_steps N), so a run killed before
        # its first epoch ends loses minutes, not the epoch (the epoch of a paper-sized config takes
        # over 10 minutes on a loaded 2-core machine); the batch loader saves its place, so the
        # resume continues the epoch where it stopped.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")
        parser.add_lightning_class_args(StopOnDivergence, "divergence")
        parser.add_lightning_class_args(RolloutEvaluation, "rollout")
        parser.add_lightning_class_args(PredictionWriter, "prediction")
        parser.add_argument("--allow_untrained", type=bool, default=False,
                            help="validate/test/predict: allow running without --ckpt_path (random weights)")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{epoch}-{step}",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,
                "step_checkpoint.monitor": None,
                "step_checkpoint.save_top_k": 1,
                "step_checkpoint.filename": "last",
                "step_checkpoint.every_n_train_steps": 0,
                "step_checkpoint.every_n_epochs": 0,
                "step_checkpoint.train_time_interval": datetime.timedelta(minutes=5),
                "step_checkpoint.enable_version_counter": False,
            }
        )
        # a link whose value is None is not applied: each kind of datamodule fills its kind of model
        for key in ("n_inputs", "n_outputs", "n_parameters", "n_conditions"):
            parser.link_arguments("data", f"model.init_args.{key}", compute_fn=lambda d, k=key: getattr(d, k, None),
                                  apply_on="instantiate")

    # ------------------------------------------------------------------------- checkpoints
    def _logs_base(self, cfg: Namespace) -> Path:
        """The folder holding ``version_N`` run folders for this config's logger."""
        trainer = cfg.trainer
        root = trainer.get("default_root_dir") or os.getcwd()
        logger = trainer.get("logger")
        init = logger.get("init_args") if isinstance(logger, Namespace) else None
        if init is not None and init.get("save_dir"):
            return Path(init.save_dir) / (init.get("name") or "lightning_logs")
        return Path(root) / "lightning_logs"

    def _parse_ckpt_path(self) -> None:
        """Resolve ``last``, validate the file and its model class, then apply its hyperparameters
        as defaults: explicit ``--model.*`` flags still win.

        (Lightning applies a checkpoint's model hyperparameters over the whole parsed config, so
        ``stiffml validate --ckpt_path X --model.mode pair`` would silently keep X's mode, and an
        AttenLSTM checkpoint would silently replace the FCNN a config names.)
        """
        sub = self.config.get("subcommand")
        if not sub or self.config[sub].get("ckpt_path") is None:
            return
        cfg = self.config[sub]
        if cfg.ckpt_path == "last":
            base = self._logs_base(cfg)
            path, version = find_resumable(base.parent, base.name)
            cfg.ckpt_path = str(path)
            self._resume_version = version if sub == "fit" else None
        elif cfg.ckpt_path in ("best", "hpc", "registry"):
            return  # Lightning's own keywords
        ckpt = load_checkpoint(cfg.ckpt_path)
        recorded, configured = checkpoint_model_class(ckpt), cfg.model.get("class_path")
        if recorded and configured and registry.import_class(recorded) is not registry.import_class(configured):
            raise ValueError(
                f"checkpoint {cfg.ckpt_path} holds a {recorded.rsplit('.', 1)[-1]} model ({recorded}) but the "
                f"config names {configured.rsplit('.', 1)[-1]} ({configured}); use the checkpoint's config or "
                "another checkpoint"
            )
        explicit = set()
        for arg in self._given_args:
            if arg.startswith("--model.") and arg != "--model.class_path":
                explicit.add(arg.split("=", 1)[0].removeprefix("--model.").removeprefix("init_args."))
        init = cfg.model.get("init_args")
        kept = {k: init.get(k) for k in explicit if init is not None and k in init}
        hparams = dict(ckpt.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            cls_path = hparams.pop("_class_path")
            accepted = _init_parameters(registry.import_class(cls_path))
            if accepted is not None:  # the CLI's links record every linked key, also those a class lacks
                hparams = {k: v for k, v in hparams.items() if k in accepted}
            hparams = {"class_path": cls_path, "dict_kwargs": hparams}
        self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)
        init = self.config[sub].model.get("init_args")
        for key, value in kept.items():
            init[key] = value

    def _active_config(self) -> Namespace:
        return self.config[self.subcommand] if self.subcommand else self.config

    # --------------------------------------------------------------------------- validation
    def before_instantiate_classes(self) -> None:
        cfg = self._active_config()
        step = cfg.get("step_checkpoint")
        if step is not None and ((step.get("every_n_train_steps") or 0) > 0 or (step.get("every_n_epochs") or 0) > 0):
            # a step (or epoch) trigger replaces the 5-minute default: Lightning allows one trigger
            step.train_time_interval = None
        if self.subcommand in ("validate", "test", "predict") and cfg.get("ckpt_path") is None and not cfg.get("allow_untrained"):
            raise ValueError(
                f"{self.subcommand} needs --ckpt_path PATH (or 'last': the newest run under the root folder); "
                f"without one the model has random weights (pass --allow_untrained true to {self.subcommand} "
                "an untrained model)"
            )
        model_cls = registry.import_class(cfg.model.class_path)
        data_cls = registry.import_class(cfg.data.class_path)
        calibration = isinstance(model_cls, type) and issubclass(model_cls, (MechanisticModel, SciMLModel))
        if isinstance(data_cls, type) and issubclass(data_cls, PEtabDataModule) and not calibration:
            raise ValueError(f"data {cfg.data.class_path} is a PEtab problem; it is fitted by model: MechanisticModel "
                             f"(configs/petab.yaml) or, with networks, SciMLModel, not {cfg.model.class_path}")
        if calibration:
            name = model_cls.__name__
            if not (isinstance(data_cls, type) and issubclass(data_cls, PEtabDataModule)):
                raise ValueError(f"model {name} calibrates PEtab problems; use data: PEtabDataModule "
                                 f"(configs/petab.yaml), not {cfg.data.class_path}")
            sciml = _is_sciml_problem((cfg.data.get("init_args") or {}).get("problem"))
            if sciml is not None and sciml != issubclass(model_cls, SciMLModel):
                want = "SciMLModel (configs/petab_sciml.yaml)" if sciml else "MechanisticModel (configs/petab.yaml)"
                kind = "is PEtab v2 (the SciML engine)" if sciml else "is PEtab v1"
                raise ValueError(f"PEtab problem '{cfg.data.init_args.problem}' {kind}: it is fitted by model: {want}, "
                                 f"not {name}")
            check_trainer_args(cfg.trainer)
            return
        if not (isinstance(model_cls, type) and issubclass(model_cls, StiffModel)):
            raise ValueError(f"model {cfg.model.class_path} is not a stiffml model")
        if not (isinstance(data_cls, type) and issubclass(data_cls, SystemDataModule)):
            raise ValueError(f"data {cfg.data.class_path} is not a stiffml datamodule")
        # The model declares the representation it consumes; link it into the datamodule.
        want = model_cls.consumes(dict(cfg.model.get("init_args") or {}))
        data_args = cfg.data.init_args
        given = data_args.get("representation")
        if given not in (None, want):
            raise ValueError(
                f"{model_cls.__name__} consumes '{want}' samples but data.representation is '{given}'"
            )
        data_args.representation = want
        if data_args.get("rate_constants") and not model_cls.reads_conditions:  # before any reference solve
            raise ValueError(f"{data_cls.__name__} draws rate constants per member (data.rate_constants) but "
                             f"{model_cls.__name__} does not read them; use ODENet (mode trajectory or derivative), "
                             "whose field is conditioned on them")
        # a window model trained on its own predictions needs `unroll` targets per window
        unroll = (cfg.model.get("init_args") or {}).get("unroll")
        if want == "window" and isinstance(unroll, int) and unroll > 1:  # bad values: the model's error
            horizon = data_args.get("horizon")
            if horizon not in (None, 1, unroll):
                raise ValueError(f"model.unroll={unroll} but data.horizon={horizon}; set one of them (the CLI links them)")
            if horizon is None:
                raise ValueError(f"model.unroll={unroll} needs a datamodule with window targets over a horizon; "
                                 f"{data_cls.__name__} has no 'horizon' argument")
            data_args.horizon = unroll
        check_trainer_args(cfg.trainer)

    def after_instantiate_classes(self) -> None:
        trainer = self.trainer
        bar = trainer.progress_bar_callback
        if isinstance(bar, RichProgressBar) and not self._progress_bar_configured():
            # Lightning's default bar when rich is installed costs these tiny models about 15 % of
            # an epoch on a 2-core CPU; tqdm redrawn every 10th step, about 1 % (bench/overhead.py)
            trainer.callbacks[trainer.callbacks.index(bar)] = TQDMProgressBar(refresh_rate=10)
        if self.subcommand == "fit":
            # Lightning does not say which precision runs (16-mixed silently becomes bf16-mixed on a CPU)
            rank_zero_info(f"precision: {trainer.precision} on {trainer.strategy.root_device.type}")
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        logger = trainer.logger
        if self._resume_version is not None and isinstance(logger, (TensorBoardLogger, CSVLogger)):
            # continue the resumed run's curves in its own version folder
            trainer.logger = type(logger)(save_dir=logger.save_dir, name=logger.name, version=self._resume_version)
        ckpt = self._active_config().get("ckpt_path")
        if (self.subcommand in ("validate", "test", "predict") and isinstance(logger, (TensorBoardLogger, CSVLogger))
                and ckpt and Path(ckpt).parent.name == "checkpoints"):
            # an evaluation of a trained run belongs to that run: <run>/validate/version_N, not a new
            # lightning_logs/version_N beside the training runs that holds only its config
            trainer.logger = type(logger)(save_dir=str(run_folder(ckpt)), name=self.subcommand)

    def fit(self, model: StiffModel, datamodule: SystemDataModule | None = None, ckpt_path: str | None = None,
            **kwargs: Any) -> None:
        """``stiffml fit``: the experiment path the benchmark uses too (:func:`run_experiment`)."""
        run_experiment(self.trainer, model, datamodule, ckpt_path=ckpt_path, **kwargs)

    def _progress_bar_configured(self) -> bool:
        """Whether the config names a progress bar callback itself."""
        callbacks = self._active_config().trainer.get("callbacks") or []
        return any("ProgressBar" in str(getattr(cb, "class_path", cb)) for cb in callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a run that fails before its first step leaves no run folder behind."""
        logger = self.trainer.logger
        log_dir = Path(logger.log_dir) if logger is not None and logger.log_dir else None
        created = [p for p in (log_dir, log_dir.parent) if not p.exists()] if log_dir is not None else []
        try:
            super()._run_subcommand(subcommand)
        except BaseException as exc:
            if created and self.trainer.global_step == 0 and not any(log_dir.rglob("*.ckpt")):
                shutil.rmtree(log_dir, ignore_errors=True)
                if log_dir.parent in created:
                    with contextlib.suppress(OSError):
                        log_dir.parent.rmdir()  # only if empty
            if isinstance(exc, SystemExit) and self.trainer.interrupted:
                # Lightning turns Ctrl-C into its own message and exit 1; say what to do next
                # (stiffml.main prints it and exits 130, the shell's code for SIGINT)
                found = last_good_checkpoint(self.trainer)
                hint = ("resume with --ckpt_path last" if subcommand == "fit" and not found.startswith("no ")
                        else found)
                raise KeyboardInterrupt(f"{subcommand} at step {self.trainer.global_step}; {hint}") from None
            raise


def _init_parameters(cls: Any) -> set[str] | None:
    """The keyword names ``cls.__init__`` accepts along its class hierarchy (None: any, through ``**kwargs``)."""
    import inspect

    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None or klass in (pl.LightningModule, object):
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def check_root_dir(root: str | os.PathLike | None) -> None:
    """One line naming ``--trainer.default_root_dir`` when runs cannot be written there (a file,
    or a folder without write permission), before anything is trained."""
    if root is None:
        return
    path = Path(root)
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        where = "" if existing == path else f" (its parent {existing} is)"
        raise ValueError(f"trainer.default_root_dir {str(path)!r} is a file, not a folder{where}; give a folder for the runs")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"trainer.default_root_dir {str(path)!r}: no permission to write in {existing}; "
                         "give a writable folder for the runs")


def check_trainer_args(trainer: Namespace) -> None:
    """One-line errors for trainer settings Lightning would accept and then fail on, and the
    precision default (64-bit on the CPU, 32-bit on an accelerator)."""
    accel = str(trainer.get("accelerator") or "auto")
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.accelerator is {accel!r} but this machine has no CUDA GPU; use 'cpu' or 'auto' "
                         "(configs/trainer/gpu*.yaml are for GPU machines)")
    if accel == "mps" and not torch.backends.mps.is_available():
        raise ValueError("trainer.accelerator is 'mps' but MPS is not available here; use 'cpu' or 'auto'")
    on_cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
    devices = trainer.get("devices")
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = trainer.devices = int(devices)  # jsonargparse keeps "64" a string (devices: int | str | list)
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if on_cpu and isinstance(devices, int) and devices > count:
        raise ValueError(f"trainer.devices is {devices} but this machine has {count} CPU cores; "
                         f"use at most {count} CPU processes (or 'auto')")
    if isinstance(devices, int) and devices < -1:
        raise ValueError(f"trainer.devices must be a positive integer, -1 or 'auto', got {devices}")
    for key, least in (("max_epochs", -1), ("min_epochs", 0), ("max_steps", -1), ("min_steps", 0)):
        value = trainer.get(key)
        if value is not None and value < least:
            allowed = "-1 (no limit) or a non-negative integer" if least == -1 else "a non-negative integer"
            raise ValueError(f"trainer.{key} must be {allowed}, got {value}")
    check_root_dir(trainer.get("default_root_dir"))
    if trainer.get("precision") is None:
        trainer.precision = "64-true" if on_cpu else "32-true"
    elif on_cpu and str(trainer.precision) in ("16", "16-mixed", "16-true"):
        # Lightning would silently run 16-mixed as bf16-mixed on the CPU, and 16-true as float16
        # arithmetic the CPU emulates slowly with a fifth of float32's digits
        raise ValueError(f"trainer.precision {trainer.precision} needs a CUDA GPU; on the CPU use 64-true (the "
                         "default), 32-true or bf16-mixed")


def main(argv: list[str]) -> int:
    """``stiffml fit|validate|test|predict ...`` (``argv`` starts with the subcommand)."""
    check_argv(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
        StiffCLI(args=argv)
    return 0


def _is_sciml_problem(problem: Any) -> bool | None:
    """Whether a PEtab problem file is for the SciML engine, PEtab v2 with or without networks
    (``None``: not readable here; the datamodule says why when it loads it)."""
    if problem is None:
        return None
    try:
        import yaml

        from stiffml.petab.examples import resolve_problem
        from stiffml.petab.sciml import is_sciml

        return is_sciml(yaml.safe_load(resolve_problem(problem).read_text()))
    except Exception:
        return None
