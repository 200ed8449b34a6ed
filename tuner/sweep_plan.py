"""A sweep's plan, made and checked before Ray starts: its Tune param_space, every config it can produce, the
trial count, the longest trial and the split trials are selected on. User mistakes surface here as one line.
"""
import argparse
import math
import time
from dataclasses import dataclass

from ray.tune.search.sample import Categorical, Float, Integer

from search_spaces import SearchSpace, SpaceError, get_space
from trainables.config import TrialConfig, resolve_config
from trainables.data.names import EMBEDDED_DATASETS
from trainables.data.registry import dataset_summary
from trainables.errors import UserError
from tuner.cli import parse_assignments
from tuner.recipes import get_recipe
from tuner.spaces import param_space

# Config keys that decide which pretrained model and which images an adversarial set is crafted from.
ADVERSARIAL_SET_KEYS = ("dataset", "data_root", "arch", "weights", "source_images", "source_iters", "cache_dir",
                        "val_fraction")


def config_defaults(args: argparse.Namespace) -> dict:
    """Values a space's own fixed values may replace."""
    return {"dataset": args.dataset, "seed": args.seed}


def config_overrides(args: argparse.Namespace) -> dict:
    """Values the user gave explicitly: they win over a space's (or recipe's) fixed values."""
    config = {}
    for key, value in (("data_root", args.data_root), ("arch", args.arch), ("weights", args.weights),
                       ("fraction", args.fraction), ("iteration_budget", args.iters)):
        if value is not None:
            config[key] = value
    return config | parse_assignments(args.set)


def trial_configs(space: dict) -> list[dict]:
    """Every config the space can produce, with each grid / categorical parameter at each of its values and
    each numeric range at both ends — enough to validate flags and find the longest trial before Ray starts."""
    options = [{}]
    for key, value in space.items():
        if isinstance(value, dict) and "grid_search" in value:
            choices = value["grid_search"]
        elif isinstance(value, Categorical):
            choices = value.categories
        elif isinstance(value, Float):
            choices = [value.lower, value.upper]
        elif isinstance(value, Integer):
            choices = [value.lower, value.upper - 1]  # Tune's integer upper bound is exclusive
        else:
            choices = [value]
        options = [{**option, key: choice} for option in options for choice in choices]
    return options


def check_datasets(configs: list[TrialConfig]) -> None:
    """Every paper dataset's layout, checked here in one line rather than in every trial on the cluster."""
    for dataset, data_root, fraction, val_fraction in sorted(
            {(c.dataset, c.data_root, c.fraction, c.val_fraction) for c in configs
             if c.dataset not in EMBEDDED_DATASETS}, key=str):
        dataset_summary(dataset, data_root, fraction, val_fraction=val_fraction)


def selection_split(configs: list[TrialConfig]) -> str:
    """The one split every trial of the sweep is selected on: schedulers and searchers compare trials by it."""
    splits = {config.selection_split for config in configs}
    if len(splits) > 1:
        raise UserError("val_fraction must be > 0 for every trial of a sweep or 0 for every trial; "
                        "this space mixes both, so trials could not be compared on one split")
    return splits.pop()


def selects_on_asr(args: argparse.Namespace) -> str | None:
    """The flag that needs every trial's ASR at every evaluation (the searcher or the scheduler ranks trials on
    it), or None."""
    if args.search == "optuna-mo":
        return "--search optuna-mo"
    return "--scheduler mo-asha" if args.scheduler == "mo-asha" else None


def check_one_set_per_trial(values: dict, flag: str) -> None:
    """Trials that report ASR get the adversarial set of their own pretrained model and data, crafted before
    them: a value sampled from a range would need a set per trial."""
    for key in ADVERSARIAL_SET_KEYS:
        if isinstance(values.get(key), (Float, Integer)):
            raise UserError(f"{flag}: {key} is sampled from a range, so every trial would need its "
                            f"own adversarial set; give {key} as a grid or a choice")


@dataclass(frozen=True)
class Plan:
    """One sweep, validated before Ray starts: its Tune param_space and every config it can produce."""

    space: SearchSpace
    name: str
    values: dict
    configs: list[TrialConfig]
    expected_trials: int
    longest: int
    split: str  # the selection split: "val", or "test" when val_fraction = 0


def plan(args: argparse.Namespace, space: SearchSpace, name: str) -> Plan:
    """User mistakes in the space, the flags or the data surface here, as one line, before any work."""
    values = param_space(space, args.search, config_defaults(args), args.method, config_overrides(args))
    configs = [resolve_config(config) for config in trial_configs(values)]
    check_datasets(configs)
    if needs_asr := selects_on_asr(args):
        check_one_set_per_trial(values, needs_asr)
    swa_swept = "swa" in space.parameters
    longest = max(config.iters + (config.swa_iters if config.swa or swa_swept else 0) for config in configs)
    grid_points = math.prod(len(v["grid_search"]) for v in values.values() if isinstance(v, dict) and "grid_search" in v)
    return Plan(space, name, values, configs, args.num_samples * (grid_points if args.search == "grid" else 1),
                longest, selection_split(configs))


def sweep_parts(args: argparse.Namespace) -> list[tuple[SearchSpace, str]]:
    """(space, run name) per sweep to run: the space, or each part of the recipe."""
    if args.recipe:
        recipe = get_recipe(args.recipe)
        name = args.name or f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        # A recipe's parts are sweeps of their own; running the recipe again continues the unfinished ones.
        return [(part, f"{name}-{part.name}") for part in recipe.parts]
    try:
        space = get_space(args.space)
    except SpaceError as error:
        raise UserError(str(error)) from None
    return [(space, args.name or f"{space.name}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")]
