"""A named search space (plain data) -> a Ray Tune param_space for the chosen search algorithm."""
from typing import Any

from ray import tune

from search_spaces import SearchSpace, SpaceError, check_domain
from trainables.config import CONFIG_KEYS
from trainables.errors import UserError
from tuner.cli import SEARCHES


def sampled_domain(domain: dict[str, Any]):
    """The Tune domain random search and Optuna draw from; a grid-only parameter becomes a choice."""
    if "loguniform" in domain:
        return tune.loguniform(*domain["loguniform"])
    if "uniform" in domain:
        return tune.uniform(*domain["uniform"])
    if "randint" in domain:
        low, high = domain["randint"]
        return tune.randint(low, high + 1)  # inclusive high, like the grid form
    return tune.choice(domain.get("choice", domain.get("grid")))


def param_space(space: SearchSpace, search: str, defaults: dict[str, Any], method: str | None,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`defaults` < the space's fixed values < the user's explicit `overrides`, plus one Tune domain per
    swept parameter; a parameter the user set explicitly is pinned to that value, not swept."""
    if search not in SEARCHES:
        raise UserError(f"unknown --search {search!r}; choose one of {', '.join(SEARCHES)}")
    parameters = dict(space.parameters)
    for name, domain in parameters.items():
        try:
            check_domain(name, domain)
        except SpaceError as error:
            raise UserError(str(error)) from None
        if name not in CONFIG_KEYS:
            raise UserError(f"space {space.name!r}: parameter {name!r} is not a trial config key; "
                            f"allowed: {', '.join(CONFIG_KEYS)}")
    unknown_fixed = sorted(set(space.fixed) - set(CONFIG_KEYS), key=repr)  # a YAML key may be a number or null
    if unknown_fixed:
        raise UserError(f"space {space.name!r}: fixed key {unknown_fixed[0]!r} is not a trial config key")
    values = {**defaults, **space.fixed, **(overrides or {})}
    parameters = {name: domain for name, domain in parameters.items() if name not in (overrides or {})}
    if method is not None:
        if space.methods and method not in space.methods:
            raise UserError(f"--method {method!r} is not for space {space.name!r}; "
                            f"choose one of {', '.join(space.methods)}")
        parameters.pop("method", None)
        values["method"] = method
    elif "method" not in parameters:
        if not space.methods:
            raise UserError(f"space {space.name!r} names no method: pass --method")
        values["method"] = space.methods[0]
    for name, domain in parameters.items():
        if search == "grid":
            if "grid" not in domain:
                raise UserError(f"parameter {name!r} of space {space.name!r} has no grid values; "
                                f"use --search random, optuna or optuna-mo")
            values[name] = tune.grid_search(domain["grid"])
        else:
            values[name] = sampled_domain(domain)
    return values
