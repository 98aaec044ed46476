"""The ``stiffml`` command: LightningCLI for fit/validate/test/predict, plus ``list``."""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any, NoReturn

import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from stiffml import registry
from stiffml.data.base import StiffDataModule
from stiffml.evaluation import PredictionWriter, RolloutEvaluation
from stiffml.models.base import StiffModel

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")

_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value type:",
    "Expected a path but",
)


def condense(message: str) -> str:
    """Turn jsonargparse's nested multi-line messages into one line naming what is wrong."""
    key = re.search(r'Parser key "(\w+)"', message)
    unknown = re.search(r"Expected a dot import path string: (\S+)", message) or re.search(
        r"Import path (\S+) does not correspond", message
    )
    if key and unknown and key.group(1) in ("model", "data"):
        kind = "models" if key.group(1) == "model" else "datamodules"
        return f"unknown {kind[:-1]} {unknown.group(1)!r}; valid: {sorted(registry.load(kind))}"
    inner = re.search(r"Errors:\s*- (.*?)\s*- Expected a <class 'NoneType'>", message, re.S)
    if inner and "Problem with given class_path" not in inner.group(1):
        return " ".join(inner.group(1).split())
    lines = [ln.strip(" -") for ln in message.splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    text = "; ".join(kept).replace(":;", ":")
    text = re.sub(r"Given value: NestedArg\(key='(\w+)', val='([^']*)'\)", r"(given \1=\2)", text)
    return text if len(text) <= 400 else text[:397] + "..."


class StiffArgumentParser(LightningArgumentParser):
    """Prints a one-line error instead of usage text; exits 2 like jsonargparse's own."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:  # type: ignore[override]
        sys.stderr.write(f"stiffml: error: {condense(message)}\n")
        sys.exit(2)


class StiffCLI(LightningCLI):
    """LightningCLI in subclass mode over every registered model and datamodule.

    Defaults: TensorBoard logs under ``<default_root_dir>/lightning_logs/version_N``, last and
    best (``val_loss``) checkpoints, seed 0, and ``precision: 64-true`` on the CPU (``32-true``
    on an accelerator) unless the trainer's precision is set.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        registry.load_all()  # import plugin classes so their short names resolve
        given = kwargs.get("args")
        self._given_args = [str(a) for a in (sys.argv[1:] if given is None else given)]
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_class", StiffArgumentParser)
        super().__init__(StiffModel, StiffDataModule, *args, subclass_mode_model=True, subclass_mode_data=True, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Two checkpoint callbacks: ModelCheckpoint's own save_last only refreshes last.ckpt in
        # steps where a top-k checkpoint is saved, so a run whose val_loss stops improving would
        # keep a stale "last". A monitor-less callback overwrites last.ckpt at every epoch end.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(RolloutEvaluation, "rollout")
        parser.add_lightning_class_args(PredictionWriter, "prediction")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{epoch}-{step}",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.link_arguments("data", "model.init_args.n_inputs", compute_fn=lambda d: d.n_inputs, apply_on="instantiate")
        parser.link_arguments("data", "model.init_args.n_outputs", compute_fn=lambda d: d.n_outputs, apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Checkpoint hyperparameters as defaults: explicit ``--model.*`` flags still win.

        Lightning applies a checkpoint's model hyperparameters over the whole parsed config, so
        ``stiffml validate --ckpt_path X --model.mode pair`` would silently keep X's mode.
        """
        explicit = set()
        for arg in self._given_args:
            if arg.startswith("--model.") and arg != "--model.class_path":
                explicit.add(arg.split("=", 1)[0].removeprefix("--model.").removeprefix("init_args."))
        sub = self.config.get("subcommand")
        if not sub or not explicit:
            return super()._parse_ckpt_path()
        init = self.config[sub].model.get("init_args")
        kept = {k: init.get(k) for k in explicit if init is not None and k in init}
        super()._parse_ckpt_path()
        init = self.config[sub].model.get("init_args")
        for key, value in kept.items():
            init[key] = value

    def _active_config(self) -> Namespace:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        cfg = self._active_config()
        model_cls = _import(cfg.model.class_path)
        data_cls = _import(cfg.data.class_path)
        if not (isinstance(model_cls, type) and issubclass(model_cls, StiffModel)):
            raise ValueError(f"model {cfg.model.class_path} is not a stiffml model")
        if not (isinstance(data_cls, type) and issubclass(data_cls, StiffDataModule)):
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
        trainer = cfg.trainer
        if trainer.get("precision") is None:
            accel = str(trainer.get("accelerator") or "auto")
            on_cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
            trainer.precision = "64-true" if on_cpu else "32-true"


def _import(class_path: str) -> Any:
    from jsonargparse._util import import_object  # noqa: PLC0415 (no public alias)

    return import_object(class_path)


def _one_line(err: BaseException) -> str:
    text = str(err)
    return " ".join((condense(text) if "\n" in text else text).split())


def cmd_list(argv: list[str]) -> int:
    """``stiffml list [PATTERN]``: registered models and datamodules."""
    from stiffml.listing import print_registry

    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: stiffml list [PATTERN]   (PATTERN: a glob over names, e.g. '*LSTM*')")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    print_registry(argv[0] if argv else "*")
    return 0


def cmd_benchmark(argv: list[str]) -> int:
    """``stiffml benchmark``: see :mod:`stiffml.benchmark`."""
    from stiffml.benchmark import main as benchmark_main

    return benchmark_main(argv)


def cmd_symbolic(argv: list[str]) -> int:
    """``stiffml symbolic --ckpt PATH``: see :mod:`stiffml.symbolic`."""
    from stiffml.symbolic import main as symbolic_main

    return symbolic_main(argv)


EXTRA_COMMANDS = {"list": cmd_list, "benchmark": cmd_benchmark, "symbolic": cmd_symbolic}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stiffml`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in EXTRA_COMMANDS:
            return EXTRA_COMMANDS[args[0]](args[1:])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
            StiffCLI(args=argv)  # None: LightningCLI reads sys.argv itself
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        print("stiffml: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError, KeyError) as err:
        print(f"stiffml: error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
