"""A sweep's settings: one frozen, typed record, built once (by `python -m tuner.sweep`'s parser or by
`tuner.api.run_sweep(**keywords)` directly), validated here, written to RUN_DIR/sweep.json and read back from it
by --resume. Torch- and Ray-free: the command line builds it before any heavy import.

Each field is the flag of the same name (`num_samples` is `--num-samples`); their meaning is in
`python -m tuner.sweep --help`.
"""
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from trainables.attack_presets import ATTACK_PRESETS
from trainables.data.specs import dataset_names
from trainables.errors import UserError
from trainables.methods import METHODS
from tuner.cli import GPUS_AUTO, SCHEDULERS, SEARCHES, SELECTIONS, check_min_accuracy

# Numeric settings whose given values must be > 0, and those that must be >= 0.
POSITIVE = ("num_samples", "iters", "cpus_per_trial", "max_concurrent", "num_cpus", "budget", "step", "attack_iters",
            "top_k")
NON_NEGATIVE = ("gpus_per_trial", "num_gpus")


def _default_storage() -> str:
    return str(Path("runs").resolve())


@dataclass(frozen=True)
class SweepSettings:
    # what to sweep
    space: str = "lambda_feat"
    recipe: str | None = None
    method: str | None = None
    dataset: str = "novel_shapes"
    data_root: str | None = None
    arch: str | None = None
    weights: str | None = None
    fraction: float | None = None
    skip_unreadable_images: bool = False
    iters: int | None = None
    set: tuple[str, ...] = ()  # KEY=VALUE trial config assignments, for every trial
    seed: int = 0
    # how to search
    search: str = "grid"
    num_samples: int = 1
    scheduler: str = "fifo"
    # where it runs
    cpus_per_trial: float = 1
    gpus_per_trial: float | str = 0  # or GPUS_AUTO until measured (tuner.dry_run.resolve_auto_gpus)
    address: str | None = None
    max_concurrent: int | None = None
    num_cpus: int | None = None
    num_gpus: float | None = None
    # the run directory
    storage: str = field(default_factory=_default_storage)
    name: str | None = None
    resume: bool = False
    overwrite: bool = False
    verbose: bool = False
    mlflow_uri: str | None = None
    # the final stage
    attack: str | None = None
    budget: float | None = None
    step: float | None = None
    attack_iters: int | None = None
    select: str = "clean"
    top_k: int | None = None
    include_stopped: bool = False
    min_accuracy: float | None = None
    no_attack: bool = False
    refit: bool = False
    # look before running
    dry_run: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.set, list):  # the parser's append action, or a record read back from JSON
            object.__setattr__(self, "set", tuple(self.set))
        for setting in fields(self):
            _check_type(setting.name, getattr(self, setting.name), setting.type)
        self._check_choices()
        self._check_numbers()
        self._check_combinations()

    @classmethod
    def from_keywords(cls, **keywords) -> "SweepSettings":
        """The Python API's settings: the flags' names with `_`, `set` as a dict of trial config values."""
        unknown = sorted(set(keywords) - {setting.name for setting in fields(cls)})
        if unknown:
            allowed = ", ".join(sorted(setting.name for setting in fields(cls)))
            raise UserError(f"run_sweep() got an unknown setting {unknown[0]!r}; allowed: {allowed}")
        assignments = keywords.pop("set", None) or {}
        if isinstance(assignments, dict):
            assignments = tuple(f"{key}={value}" for key, value in assignments.items())
        return cls(**keywords, set=tuple(assignments))

    def to_record(self) -> dict:
        """For sweep.json: plain JSON values."""
        return asdict(self) | {"set": list(self.set)}

    @classmethod
    def from_record(cls, record: dict, **now) -> "SweepSettings":
        """A recorded sweep's settings (fields a later version dropped are ignored), with `now`'s values on top."""
        known = {setting.name for setting in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known} | now)

    def _check_choices(self) -> None:
        choices = {"search": SEARCHES, "scheduler": SCHEDULERS, "select": SELECTIONS, "dataset": dataset_names(),
                   "method": tuple(METHODS), "attack": tuple(ATTACK_PRESETS)}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise UserError(f"--{_flag(name)} {value!r} is not one of {', '.join(allowed)}")
        if isinstance(self.gpus_per_trial, str) and self.gpus_per_trial != GPUS_AUTO:
            raise UserError(f"--gpus-per-trial {self.gpus_per_trial!r} is neither a number nor {GPUS_AUTO}")

    def _check_numbers(self) -> None:
        for name in POSITIVE + NON_NEGATIVE:
            value = getattr(self, name)
            if value is None or value == GPUS_AUTO:  # auto: resolved to a number by measuring
                continue
            if not math.isfinite(value):
                raise UserError(f"--{_flag(name)} {value} must be a finite number")
            if value <= 0 if name in POSITIVE else value < 0:
                raise UserError(f"--{_flag(name)} {value} must be {'>' if name in POSITIVE else '>='} 0")
        gpus = self.gpus_per_trial
        if gpus != GPUS_AUTO and gpus > 1 and gpus != int(gpus):
            raise UserError(f"--gpus-per-trial {gpus}: above 1 it must be a whole number")
        if not 0 <= self.seed < 2**32:  # Optuna's sampler takes no other seed
            raise UserError(f"--seed {self.seed} must be in [0, 2**32)")
        check_min_accuracy(self.min_accuracy)

    def _check_combinations(self) -> None:
        if self.resume and not self.name:
            raise UserError("--resume needs --name: the sweep to continue")
        if self.refit and self.no_attack:
            raise UserError("--refit chooses on the final stage's validation numbers: it cannot run with --no-attack")
        if self.resume and self.overwrite:
            raise UserError("--resume continues a run and --overwrite replaces it: give one of them")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check_type(name: str, value, annotation) -> None:
    """A value of the field's declared type: a number where a number goes (int for a float field; never a bool),
    a bool for a switch, text for text."""
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return
        if kind is bool and isinstance(value, bool):
            return
        if kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
            if kind is float or isinstance(value, int):
                return
        if kind is str and isinstance(value, str):
            return
        if typing.get_origin(kind) is tuple and isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            return
    wanted = " or ".join("None" if kind is type(None) else getattr(kind, "__name__", str(kind)) for kind in allowed)
    raise UserError(f"--{_flag(name)} {value!r}: expected {wanted}")
