"""Transfer methods as data: one spec each, read by the single training loop in `trainables.train`.

Hyper-parameter defaults are the paper's (Sec. 5.1 and the authors' code); `trainables.config` layers the
per-dataset values (DELTA's lambda_feat per dataset, the embedded default's short schedule) on top.
"""
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from trainables.errors import UserError

FINE_TUNE_SCHEDULE = {"iters": 30_000, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}
RETRAIN_SCHEDULE = {"iters": 90_000, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-3}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    init: Literal["pretrained", "random"]  # backbone start: theta0, or reset_parameters()
    trains: Literal["head", "all"]
    regularizer: Literal["weight_decay", "l2sp", "feature"]  # beyond the head penalty on every run
    dropout: bool = False  # spatial dropout after every distilled stage
    swa: bool = False  # stochastic weight averaging stage after the main one
    adversarial: bool = False  # train on clean + PGD examples
    defaults: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def needs_pretrained(self) -> bool:
        return self.init == "pretrained" or self.regularizer in ("l2sp", "feature")

    @property
    def needs_teacher(self) -> bool:
        return self.regularizer == "feature"


def _spec(name: str, summary: str, defaults: dict[str, Any], **switches) -> MethodSpec:
    return MethodSpec(name, summary, defaults=MappingProxyType(defaults), **switches)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        _spec("linear", "linear probe: only a new head on the frozen pretrained backbone",
              FINE_TUNE_SCHEDULE, init="pretrained", trains="head", regularizer="weight_decay"),
        _spec("finetune", "fine-tune every layer from the pretrained weights",
              FINE_TUNE_SCHEDULE, init="pretrained", trains="all", regularizer="weight_decay"),
        _spec("l2sp", "fine-tune with lambda_l2sp * ||theta - theta0||^2 instead of weight decay",
              {**FINE_TUNE_SCHEDULE, "weight_decay": 0.0, "lambda_l2sp": 0.01},
              init="pretrained", trains="all", regularizer="l2sp"),
        _spec("delta", "fine-tune with feature distillation from the pretrained model (DELTA)",
              {**FINE_TUNE_SCHEDULE, "lambda_feat": 0.1},
              init="pretrained", trains="all", regularizer="feature"),
        _spec("retrain", "train from random initialisation, no transfer",
              RETRAIN_SCHEDULE, init="random", trains="all", regularizer="weight_decay"),
        _spec("delta_r", "random initialisation + feature distillation (DELTA-R)",
              {**RETRAIN_SCHEDULE, "lambda_feat": 5.0},
              init="random", trains="all", regularizer="feature"),
        _spec("renofeation", "random init + feature distillation + spatial dropout + SWA",
              {**RETRAIN_SCHEDULE, "lambda_feat": 5.0},
              init="random", trains="all", regularizer="feature", dropout=True, swa=True),
        _spec("delta_adv", "DELTA on clean + PGD-3 examples crafted on the model being trained, 2x iterations",
              {**FINE_TUNE_SCHEDULE, "iters": 2 * FINE_TUNE_SCHEDULE["iters"], "lambda_feat": 0.1},
              init="pretrained", trains="all", regularizer="feature", adversarial=True),
    )
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]
