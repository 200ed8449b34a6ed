"""Named search spaces: plain data, no Ray.

A space maps trial-config keys to a domain: `grid` (the values a grid search visits) and/or one sampled
domain for random search and Optuna (`loguniform`, `uniform`, `randint` as [low, high]; `choice` as a
list). A parameter with only a grid is sampled as a choice over it. `fixed` values go to every trial.
`methods` lists the transfer methods the space is meant for (the sweep's --method picks among them; with
no --method a space with a `method` parameter sweeps it). User spaces in YAML or JSON use the same form.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.methods import METHODS

SAMPLED_DOMAINS = ("loguniform", "uniform", "randint", "choice")
DOMAIN_KINDS = ("grid",) + SAMPLED_DOMAINS
SPACE_KEYS = ("name", "description", "source", "methods", "parameters", "fixed")


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the bad key or value."""


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    source: str  # where the values come from
    methods: tuple[str, ...]
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)


FINE_TUNING_FAMILY = ("finetune", "l2sp", "delta", "linear")
LAMBDA_FEAT_GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]

SPACES: dict[str, SearchSpace] = {
    space.name: space
    for space in (
        SearchSpace(
            "paper_grid", "lr x momentum x weight decay for the fine-tuning family (8 trials)",
            "paper Sec. 5.1, after Li et al. (ICLR 2020)", FINE_TUNING_FAMILY,
            {"lr": {"grid": [0.01, 0.005], "loguniform": [0.001, 0.05]},
             "momentum": {"grid": [0.0, 0.9], "uniform": [0.0, 0.95]},
             "weight_decay": {"grid": [0.0, 1e-4], "choice": [0.0, 1e-5, 1e-4, 1e-3]}},
        ),
        SearchSpace(
            "lambda_feat", "feature-distillation weight for DELTA, DELTA-R and Renofeation (Fig. 4)",
            "paper Fig. 4 and Sec. 5.7; log-spaced over 0.01..10", ("delta", "delta_r", "renofeation"),
            {"method": {"grid": ["delta", "delta_r", "renofeation"]},
             "lambda_feat": {"grid": LAMBDA_FEAT_GRID, "loguniform": [0.01, 10.0]}},
        ),
        SearchSpace(
            "lambda_feat_quick", "DELTA and Renofeation x lambda_feat 0.1, 1, 10 at their full schedules (6 trials; "
            "the demo)", "paper Fig. 4, three of its values", ("delta", "renofeation"),
            {"method": {"grid": ["delta", "renofeation"]},
             "lambda_feat": {"grid": [0.1, 1.0, 10.0], "loguniform": [0.01, 10.0]}},
        ),
        SearchSpace(
            "l2sp_lambda", "L2-SP weight", "paper Table 2 (L2SP tuned per dataset, after Li et al. 2018)",
            ("l2sp",), {"lambda_l2sp": {"grid": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "loguniform": [1e-4, 1.0]}},
        ),
        SearchSpace(
            "renofeation", "Renofeation's knobs: lambda_feat x dropout p x SWA on/off x SWA interval",
            "paper Sec. 4 and 5.1 (p = 0.1, SWA every 500 of 30,000 iterations)", ("renofeation",),
            {"lambda_feat": {"grid": [0.1, 1.0, 5.0], "loguniform": [0.01, 10.0]},
             "dropout_p": {"grid": [0.05, 0.1, 0.2], "uniform": [0.0, 0.3]},
             "swa": {"grid": [True, False]},
             "swa_every": {"grid": [250, 500, 1000]}},
        ),
        SearchSpace(
            "ablation", "DELTA, re-training, DELTA-R x {plain, DO, SWA, DO+SWA} (12 trials)",
            "paper Fig. 3", ("delta", "retrain", "delta_r"),
            {"method": {"grid": ["delta", "retrain", "delta_r"]},
             "dropout": {"grid": [False, True]},
             "swa": {"grid": [False, True]}},
        ),
        SearchSpace(
            "methods", "every method at its defaults x 3 seeds (the rows of Tables 2 and 4, mean +- spread)",
            "paper Tables 2, 4 and 6", tuple(METHODS),
            {"method": {"grid": list(METHODS)}, "seed": {"grid": [0, 1, 2]}},
        ),
    )
}


def get_space(name_or_file: str) -> SearchSpace:
    """A named space, or a user's YAML / JSON file in the same form."""
    if name_or_file in SPACES:
        return SPACES[name_or_file]
    path = Path(name_or_file)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return load_space_file(path)
    raise SpaceError(f"unknown space {name_or_file!r}; choose one of {', '.join(SPACES)} or a .yaml/.json file")


def load_space_file(path: Path) -> SearchSpace:
    if not path.is_file():
        raise SpaceError(f"space file {path} does not exist")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise SpaceError(f"space file {path} is not valid {path.suffix[1:].upper()}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SpaceError(f"space file {path} must hold a mapping with keys {', '.join(SPACE_KEYS)}")
    unknown = sorted(set(data) - set(SPACE_KEYS))
    if unknown:
        raise SpaceError(f"space file {path}: unknown key {unknown[0]!r}; allowed: {', '.join(SPACE_KEYS)}")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict) or not parameters:
        raise SpaceError(f"space file {path}: 'parameters' must map config keys to domains")
    for name, domain in parameters.items():
        check_domain(name, domain)
    methods = data.get("methods") or []
    return SearchSpace(str(data.get("name", path.stem)), str(data.get("description", "")),
                       str(data.get("source", str(path))), tuple(methods if isinstance(methods, list) else [methods]),
                       parameters, dict(data.get("fixed") or {}))


def check_domain(name: str, domain: Any) -> None:
    if not isinstance(domain, dict) or not domain:
        raise SpaceError(f"parameter {name!r}: a domain must map one of {', '.join(DOMAIN_KINDS)} to values")
    unknown = sorted(set(domain) - set(DOMAIN_KINDS))
    if unknown:
        raise SpaceError(f"parameter {name!r}: unknown domain {unknown[0]!r}; allowed: {', '.join(DOMAIN_KINDS)}")
    sampled = [kind for kind in domain if kind in SAMPLED_DOMAINS]
    if len(sampled) > 1:
        raise SpaceError(f"parameter {name!r}: give at most one of {', '.join(SAMPLED_DOMAINS)}")
    for kind, values in domain.items():
        if not isinstance(values, list) or not values:
            raise SpaceError(f"parameter {name!r}: {kind} needs a non-empty list")
        if kind in ("loguniform", "uniform", "randint") and (len(values) != 2 or not values[0] < values[1]):
            raise SpaceError(f"parameter {name!r}: {kind} needs [low, high] with low < high, got {values}")
        if kind == "loguniform" and values[0] <= 0:
            raise SpaceError(f"parameter {name!r}: loguniform needs low > 0, got {values[0]}")
