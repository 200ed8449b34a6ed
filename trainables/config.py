"""A trial's configuration: the flat dict Ray Tune hands the trainable, resolved and validated.

Resolution, later layers winning: common defaults < the method's paper defaults < the dataset's profile <
the method's own values for that dataset (its spec's embedded schedule, or the authors' per-dataset values)
< the user's config. Unknown keys and impossible values are user errors naming the key and what is allowed.
"""
import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from trainables.data.specs import DEFAULT_VAL_FRACTION, data_root_hint, dataset_spec
from trainables.errors import UserError
from trainables.methods import get_method
from trainables.models.archs import check_arch
from trainables.models.backbones import check_layout


@dataclass(frozen=True)
class TrialConfig:
    method: str
    dataset: str = "novel_shapes"
    data_root: str | None = None
    fraction: float = 1.0
    # The validation share carved from the training split; 0 = none (select on test).
    val_fraction: float = DEFAULT_VAL_FRACTION
    # Image files that do not decode are left out of the dataset (and counted) instead of stopping the sweep.
    skip_unreadable_images: bool = False
    arch: str = "resnet18"
    weights: str | None = None  # torchvision-format state dict; None = the arch's default source
    # Comma-separated module names (as named_modules() spells them, e.g. "features.2,features.4") whose outputs
    # are distilled and followed by spatial dropout; None = the arch's known stages (ResNets, MobileNetV2).
    taps: str | None = None
    seed: int = 0
    batch_size: int = 64
    iters: int = 30_000  # main stage (cosine LR per iteration)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4  # SGD weight decay on the backbone, and on the head with head_weight_decay
    head_beta: float = 0.01  # 0.5 * head_beta * ||W_fc||^2 (+ ||b_fc||^2 with head_penalty_bias) on every run
    # The authors' code (train.py, linear_l2 and the SGD over model.parameters()): the head penalty covers the
    # bias too, and weight decay the head too. Off in the embedded datasets' profile.
    head_penalty_bias: bool = True
    head_weight_decay: bool = True
    lambda_feat: float = 0.0
    lambda_l2sp: float = 0.0
    dropout: bool = False
    dropout_p: float = 0.1
    swa: bool = False
    swa_iters: int = 30_000  # SWA stage at constant LR after the main stage
    swa_lr: float | None = None  # None: half of lr (the paper, Sec. 5.1); see swa_learning_rate
    # The SWA stage starts a new SGD (no momentum carried over), as the authors' separate SWA run does.
    swa_fresh_optimizer: bool = True
    swa_every: int = 500
    adv_eps: float = 0.02  # [0, 1] pixels; adversarial training only
    adv_step: float = 0.01
    adv_steps: int = 3
    eval_every: int = 1000
    checkpoint_every: int = 5000  # a report carries a checkpoint this often, and at the end of each stage
    num_workers: int = 4
    # On CUDA only (trainables.precision): autocast to bf16 (fp16 + loss scaling without bf16) and channels_last.
    amp: bool = True
    channels_last: bool = True
    # On CUDA, for image-file datasets: JPEG decoding (nvJPEG) and the training augmentation on the GPU.
    gpu_decode: bool = True
    # DELTA/DELTA-R/Renofeation: the frozen teacher's features of every image training can show it (the embedded
    # datasets' crops and flips) computed once into cache_dir and reused (trainables.teacher_cache); False = run
    # the teacher on every batch. Trials whose augmentation is unbounded (paper datasets, imagefolder) ignore it.
    teacher_cache: bool = True
    cache_dir: str | None = None
    source_images: int = 10_000  # the embedded synthetic source model's recipe
    source_iters: int = 3_000

    @property
    def total_iters(self) -> int:
        return self.iters + (self.swa_iters if self.swa else 0)

    @property
    def swa_learning_rate(self) -> float:
        """The SWA stage's constant LR: swa_lr, else half the main stage's lr (0.005 for the paper's 0.01)."""
        return self.lr / 2 if self.swa_lr is None else self.swa_lr

    @property
    def selection_split(self) -> str:
        """The split this trial reports on while training, and its hyper-parameters are selected by."""
        return "val" if self.val_fraction > 0 else "test"


PAPER_PROFILE: dict[str, Any] = {"arch": "resnet18"}
EMBEDDED_PROFILE: dict[str, Any] = {
    "arch": "resnet18_w32",
    "num_workers": 0,
    "eval_every": 100,
    "checkpoint_every": 500,
    "adv_eps": 0.1,
    "adv_step": 0.05,
    "swa_iters": 500,
    "swa_every": 25,
    # The recipe details below predate issue 21: kept so the embedded default's measured table reproduces.
    "swa_lr": 0.005,
    "swa_fresh_optimizer": False,
    "head_penalty_bias": False,
    "head_weight_decay": False,
    # At 32 px a GPU step is launch-bound: autocast's casts made it 8-12 % slower on an H200 (benchmarks/README.md).
    "amp": False,
    "channels_last": False,
}
def selection_metrics(split: str) -> tuple[str, str]:
    """The names of the accuracy and the ASR a trial reports on `split` ("val", or "test" without one)."""
    return f"{split}_acc", f"{split}_asr"


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig))
ITERATION_BUDGET = "iteration_budget"
_POSITIVE = ("batch_size", "iters", "lr", "swa_iters", "swa_lr", "swa_every", "eval_every", "checkpoint_every",
             "adv_steps", "source_images", "source_iters")
_NON_NEGATIVE = ("momentum", "weight_decay", "head_beta", "lambda_feat", "lambda_l2sp", "adv_eps", "adv_step",
                 "num_workers")


def method_defaults(method: str, dataset: str) -> dict[str, Any]:
    """Every value a trial of `method` on `dataset` uses unless the user overrides it."""
    spec = get_method(method)
    values: dict[str, Any] = {"dropout": spec.dropout, "swa": spec.swa, **spec.defaults}
    if dataset_spec(dataset).profile == "embedded":
        return values | EMBEDDED_PROFILE | spec.embedded
    return values | PAPER_PROFILE | spec.per_dataset.get(dataset, {})


def resolve_config(user: dict[str, Any]) -> TrialConfig:
    """The trial's config from a config dict. `iteration_budget` in the dict is a directive of the sweep and
    train commands (--iters), not a field: it sets the main stage and scales the other iteration counts."""
    unknown = sorted(set(user) - set(CONFIG_KEYS) - {ITERATION_BUDGET})
    if unknown:
        raise UserError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(CONFIG_KEYS)}")
    if "method" not in user:
        raise UserError("config needs a 'method'")
    # Cast first: a method or dataset given as a list or a number is then a name no method or dataset has.
    values = _coerce({k: v for k, v in user.items() if k != ITERATION_BUDGET})
    values = _coerce(method_defaults(values["method"], values.get("dataset", TrialConfig.dataset)) | values)
    if user.get(ITERATION_BUDGET) is not None:
        values = with_iteration_budget(values, _coerce_budget(user[ITERATION_BUDGET]))
    config = TrialConfig(**values)
    _validate(config)
    return config


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Cast to the declared types so YAML ints, numpy scalars and strings from a search space behave the same."""
    kinds = {f.name: _without_none(f.type) for f in dataclasses.fields(TrialConfig)}
    optional = {f.name for f in dataclasses.fields(TrialConfig) if type(None) in typing.get_args(f.type)}
    casts = {bool: _as_bool, int: _as_int, float: _as_finite_float}
    coerced = {}
    for key, value in values.items():
        cast = casts.get(kinds[key])
        if value is None and key in optional:  # elsewhere None is cast, and refused, like any other value
            coerced[key] = None
        elif cast is None:
            coerced[key] = str(value)
        else:
            try:
                coerced[key] = cast(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a huge int as a float, inf as an int
                raise UserError(f"config {key}={value!r} is not a valid {kinds[key].__name__}") from None
    return coerced


def _coerce_budget(value: Any) -> int:
    try:
        return _as_int(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"config {ITERATION_BUDGET}={value!r} (--iters) is not a valid int") from None


def _without_none(kind: Any) -> type:
    """`int | None` -> int: optional fields are cast like their type when given."""
    return next((arg for arg in typing.get_args(kind) if arg is not type(None)), kind)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(float(value)):
        raise ValueError(value)
    return int(float(value))


def _as_finite_float(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):  # NaN fails no comparison in _validate, infinity no lower bound
        raise ValueError(value)
    return number


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _validate(config: TrialConfig) -> None:
    check_arch(config.arch)
    check_layout(config.arch, config.taps)
    for key in _POSITIVE:
        if getattr(config, key) is not None and getattr(config, key) <= 0:  # swa_lr may be None: derived
            raise UserError(f"config {key}={getattr(config, key)!r} must be > 0")
    for key in _NON_NEGATIVE:
        if getattr(config, key) < 0:
            raise UserError(f"config {key}={getattr(config, key)!r} must be >= 0")
    if not 0.0 <= config.val_fraction < 1.0:
        raise UserError(f"config val_fraction={config.val_fraction!r} must be in [0, 1)")
    if not 0.0 < config.fraction <= 1.0:
        raise UserError(f"config fraction={config.fraction!r} must be in (0, 1]")
    if not 0.0 <= config.dropout_p < 1.0:
        raise UserError(f"config dropout_p={config.dropout_p!r} must be in [0, 1)")
    if not 0 <= config.seed < 2**32:  # as the sweep's --seed; far larger ones overflow torch's generator seed
        raise UserError(f"config seed={config.seed!r} must be in [0, 2**32)")
    if dataset_spec(config.dataset).needs_data_root and not config.data_root:
        raise UserError(f"dataset {config.dataset!r} needs data_root (--data-root): {data_root_hint(config.dataset)}")


ITERATION_KEYS = ("swa_iters", "swa_every", "eval_every", "checkpoint_every")


def with_iteration_budget(values: dict[str, Any], iters: int) -> dict[str, Any]:
    """`values` with the main stage set to `iters` iterations and every other iteration count (SWA length and
    interval, evaluation and checkpoint intervals) scaled by the same factor, so a short run keeps the
    method's shape."""
    if iters <= 0:
        raise UserError(f"config {ITERATION_BUDGET}={iters} (--iters) must be > 0")
    defaults = method_defaults(values["method"], values.get("dataset", TrialConfig.dataset))
    factor = iters / values.get("iters", defaults["iters"])
    scaled = {"iters": iters}
    for key in ITERATION_KEYS:
        base = values.get(key, defaults.get(key, getattr(TrialConfig, key)))
        scaled[key] = max(1, round(base * factor))
    return values | scaled
