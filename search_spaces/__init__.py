"""Named search spaces: plain data, no Ray.

A space maps trial-config keys to a domain: `grid` (the values a grid search visits) and/or one sampled
domain for random search and Optuna (`loguniform`, `uniform`, `randint` as [low, high]; `choice` as a
list). A parameter with only a grid is sampled as a choice over it. `fixed` values go to every trial.
`methods` lists the transfer methods the space is meant for (the sweep's --method picks among them; with
no --method a space with a `method` parameter sweeps it). User spaces in YAML or JSON use the same form.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.methods import METHODS

SAMPLED_DOMAINS = ("loguniform", "uniform", "randint", "choice")
DOMAIN_KINDS = ("grid",) + SAMPLED_DOMAINS
RANGE_DOMAINS = ("loguniform", "uniform", "randint")  # given as [low, high]
SPACE_KEYS = ("name", "description", "source", "methods", "parameters", "fixed")
MAX_DOCUMENT_VALUES = 100_000  # in a user's space file: the named spaces hold a few dozen


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
    data = read_document(path)
    check_document_size(path, data)
    if not isinstance(data, dict):
        raise SpaceError(f"space file {path} must hold a mapping with keys {', '.join(SPACE_KEYS)}")
    unknown = sorted(set(data) - set(SPACE_KEYS), key=repr)  # YAML keys may be numbers, booleans, null
    if unknown:
        raise SpaceError(f"space file {path}: unknown key {unknown[0]!r}; allowed: {', '.join(SPACE_KEYS)}")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict) or not parameters:
        raise SpaceError(f"space file {path}: 'parameters' must map config keys to domains")
    for name, domain in parameters.items():
        check_domain(name, domain)
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SpaceError(f"space file {path}: 'fixed' must map config keys to values, got {fixed!r}")
    return SearchSpace(str(data.get("name", path.stem)), str(data.get("description", "")),
                       str(data.get("source", str(path))), space_methods(path, data.get("methods")), parameters,
                       fixed)


def read_document(path: Path) -> Any:
    """The file's YAML or JSON document. Read as bytes: both parsers detect UTF-8/16/32 whatever the locale."""
    try:
        if not path.is_file():  # a folder, or a FIFO that reading would wait on forever
            raise SpaceError(f"space file {path} {'is not a file' if path.exists() else 'does not exist'}")
        content = path.read_bytes()
    except OSError as error:  # e.g. a name too long for the file system, or no permission
        raise SpaceError(f"space file {path} cannot be read: {error.strerror or error}") from None
    try:
        return json.loads(content) if path.suffix.lower() == ".json" else yaml.safe_load(content)
    except (ValueError, yaml.YAMLError, RecursionError) as error:  # RecursionError: nested thousands deep
        raise SpaceError(f"space file {path} is not valid {path.suffix[1:].upper()}: "
                         f"{str(error).splitlines()[0]}") from None


def check_document_size(path: Path, document: Any) -> None:
    """YAML anchors and aliases can make a few lines expand to billions of values, or a list contain itself:
    either would hang or crash whatever walks the space (its plan, --show-space)."""
    sizes: dict[int, int] = {}  # per list or mapping (by id): the values it holds, aliases expanded

    def size(node: Any, ancestors: frozenset[int]) -> int:
        if not isinstance(node, (list, dict)):
            return 1
        if id(node) in ancestors:
            raise SpaceError(f"space file {path}: an alias makes a value contain itself")
        if id(node) not in sizes:
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            sizes[id(node)] = 1 + sum(size(child, ancestors | {id(node)}) for child in children)
        return sizes[id(node)]

    try:
        values = size(document, frozenset())
    except RecursionError:
        raise SpaceError(f"space file {path} is nested too deeply") from None
    if values > MAX_DOCUMENT_VALUES:
        raise SpaceError(f"space file {path} holds {values:,} values with its aliases expanded, more than a space "
                         f"needs ({MAX_DOCUMENT_VALUES:,})")


def space_methods(path: Path, methods: Any) -> tuple[str, ...]:
    """The file's `methods`: one method name or a list of them, each a known method."""
    names = [] if methods is None else methods if isinstance(methods, list) else [methods]
    for name in names:
        if not isinstance(name, str) or name not in METHODS:
            raise SpaceError(f"space file {path}: 'methods' lists {name!r}, not a method; choose from "
                             f"{', '.join(METHODS)}")
    return tuple(names)


def check_domain(name: str, domain: Any) -> None:
    if not isinstance(domain, dict) or not domain:
        raise SpaceError(f"parameter {name!r}: a domain must map one of {', '.join(DOMAIN_KINDS)} to values")
    unknown = sorted(set(domain) - set(DOMAIN_KINDS), key=repr)  # YAML keys may be numbers, booleans, null
    if unknown:
        raise SpaceError(f"parameter {name!r}: unknown domain {unknown[0]!r}; allowed: {', '.join(DOMAIN_KINDS)}")
    sampled = [kind for kind in domain if kind in SAMPLED_DOMAINS]
    if len(sampled) > 1:
        raise SpaceError(f"parameter {name!r}: give at most one of {', '.join(SAMPLED_DOMAINS)}")
    for kind, values in domain.items():
        if not isinstance(values, list) or not values:
            raise SpaceError(f"parameter {name!r}: {kind} needs a non-empty list")
        if kind in RANGE_DOMAINS:
            check_range(name, kind, values)


def check_range(name: str, kind: str, values: list) -> None:
    """[low, high] of finite numbers (whole ones for randint), low < high, and low > 0 on a log scale."""
    whole = kind == "randint"
    if len(values) != 2 or not all(is_finite_number(value, whole) for value in values) or not values[0] < values[1]:
        raise SpaceError(f"parameter {name!r}: {kind} needs [low, high], {'whole' if whole else 'finite'} numbers "
                         f"with low < high, got {values!r}")
    if kind == "loguniform" and values[0] <= 0:
        raise SpaceError(f"parameter {name!r}: loguniform needs low > 0, got {values[0]}")


def is_finite_number(value: Any, whole: bool) -> bool:
    if isinstance(value, bool):  # YAML's true/false are ints to Python, not bounds
        return False
    return isinstance(value, int) or (not whole and isinstance(value, float) and math.isfinite(value))
