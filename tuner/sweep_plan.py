"""A sweep's plan, made and checked before Ray starts: its Tune param_space, every config it can produce, the
trial count, the longest trial and the split trials are selected on. User mistakes surface here as one line.
"""
import math
import sys
import time
from dataclasses import dataclass

from ray.tune.search.sample import Categorical, Float, Integer

from search_spaces import SearchSpace, SpaceError, get_space
from trainables.config import TrialConfig, resolve_config
from trainables.data.registry import check_images_decode, dataset_summary
from trainables.data.specs import dataset_spec
from trainables.errors import UserError
from tuner.cli import parse_assignments
from tuner.recipes import REFIT_PROTOCOL, RecipePart, get_recipe
from tuner.settings import SweepSettings
from tuner.spaces import param_space

SEARCH_PROTOCOL = "search"  # a sweep whose trials are selected among as they are (no refit)
# Configs a plan resolves and checks at most (about 0.1 ms each): a grid that large is more trials than any sweep
# runs, and a sampled search's space that large wants fewer choices.
MAX_CHECKED_CONFIGS = 100_000
# Config keys that decide which pretrained model and which images an adversarial set is crafted from.
ADVERSARIAL_SET_KEYS = ("dataset", "data_root", "arch", "weights", "source_images", "source_iters", "cache_dir",
                        "val_fraction")


def config_defaults(settings: SweepSettings) -> dict:
    """Values a space's own fixed values may replace."""
    return {"dataset": settings.dataset, "seed": settings.seed}


def config_overrides(settings: SweepSettings) -> dict:
    """Values the user gave explicitly: they win over a space's (or recipe's) fixed values."""
    config = {}
    for key, value in (("data_root", settings.data_root), ("arch", settings.arch), ("weights", settings.weights),
                       ("fraction", settings.fraction), ("iteration_budget", settings.iters)):
        if value is not None:
            config[key] = value
    if settings.skip_unreadable_images:
        config["skip_unreadable_images"] = True
    return config | parse_assignments(settings.set)


def trial_configs(space: dict) -> list[dict]:
    """Every config the space can produce, with each grid / categorical parameter at each of its values and
    each numeric range at both ends — enough to validate flags and find the longest trial before Ray starts."""
    choices = {key: value_choices(value) for key, value in space.items()}
    combinations = math.prod(len(values) for values in choices.values())
    if combinations > MAX_CHECKED_CONFIGS:  # a plan that would take minutes and gigabytes to check
        raise UserError(f"the space has {combinations:,} combinations of values to check before the sweep starts, "
                        f"more than {MAX_CHECKED_CONFIGS:,}: give fewer grid values or choices")
    options = [{}]
    for key, values in choices.items():
        options = [{**option, key: choice} for option in options for choice in values]
    return options


def value_choices(value) -> list:
    """A param_space value's values to check: a grid's or a choice's every one, a numeric range's two ends."""
    if isinstance(value, dict) and "grid_search" in value:
        return value["grid_search"]
    if isinstance(value, Categorical):
        return value.categories
    if isinstance(value, Float):
        return [value.lower, value.upper]
    if isinstance(value, Integer):
        return [value.lower, value.upper - 1]  # Tune's integer upper bound is exclusive
    return [value]


def check_datasets(configs: list[TrialConfig]) -> None:
    """Every paper dataset's layout, and that each of its image files decodes, checked here in one line rather
    than in every trial on the cluster; files left out with skip_unreadable_images are one warning line."""
    image_configs = [c for c in configs if dataset_spec(c.dataset).needs_data_root]
    for dataset, data_root, fraction, val_fraction in sorted(
            {(c.dataset, c.data_root, c.fraction, c.val_fraction) for c in image_configs}, key=str):
        dataset_summary(dataset, data_root, fraction, val_fraction=val_fraction)
    # After every layout: a mistake there shows at once, not after decoding the other datasets' images.
    for dataset, data_root, skip_unreadable, cache_dir in sorted(
            {(c.dataset, c.data_root, c.skip_unreadable_images, c.cache_dir) for c in image_configs}, key=str):
        warning = check_images_decode(dataset, data_root, skip_unreadable=skip_unreadable, cache_dir=cache_dir)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)


def selection_split(configs: list[TrialConfig]) -> str:
    """The one split every trial of the sweep is selected on: schedulers and searchers compare trials by it."""
    splits = {config.selection_split for config in configs}
    if len(splits) > 1:
        raise UserError("val_fraction must be > 0 for every trial of a sweep or 0 for every trial; "
                        "this space mixes both, so trials could not be compared on one split")
    return splits.pop()


def selects_on_asr(settings: SweepSettings) -> str | None:
    """The flag that needs every trial's ASR at every evaluation (the searcher or the scheduler ranks trials on
    it), or None."""
    if settings.search == "optuna-mo":
        return "--search optuna-mo"
    return "--scheduler mo-asha" if settings.scheduler == "mo-asha" else None


def check_one_set_per_trial(values: dict, flag: str) -> None:
    """Trials that report ASR get the adversarial set of their own pretrained model and data, crafted before
    them: a value sampled from a range would need a set per trial."""
    for key in ADVERSARIAL_SET_KEYS:
        if isinstance(values.get(key), (Float, Integer)):
            raise UserError(f"{flag}: {key} is sampled from a range, so every trial would need its "
                            f"own adversarial set; give {key} as a grid or a choice")


def check_searcher_has_a_choice(values: dict, search: str) -> None:
    """Optuna needs at least one parameter to sample; a space the user's --set pinned whole has none."""
    if search.startswith("optuna") and not any(isinstance(v, (Categorical, Float, Integer)) for v in values.values()):
        raise UserError(f"--search {search}: every parameter of this space is fixed (by the space or by --set), so "
                        f"there is nothing to sample; use --search grid, or leave a swept parameter unset")


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
    refit: bool = False  # the configurations chosen on validation are re-trained on train + validation
    protocol: str = SEARCH_PROTOCOL  # what sweep.json records: a search, a refit search, fixed recipe settings


def plan(settings: SweepSettings, space: SearchSpace, name: str, part: RecipePart | None = None) -> Plan:
    """User mistakes in the space, the flags or the data surface here, as one line, before any work."""
    values = param_space(space, settings.search, config_defaults(settings), settings.method, config_overrides(settings))
    configs = [resolve_config(config) for config in trial_configs(values)]
    check_datasets(configs)
    if needs_asr := selects_on_asr(settings):
        check_one_set_per_trial(values, needs_asr)
    check_searcher_has_a_choice(values, settings.search)
    swa_swept = "swa" in space.parameters
    longest = max(config.iters + (config.swa_iters if config.swa or swa_swept else 0) for config in configs)
    grid_points = math.prod(len(v["grid_search"]) for v in values.values()
                            if isinstance(v, dict) and "grid_search" in v)
    trials = settings.num_samples * (grid_points if settings.search == "grid" else 1)
    if trials > MAX_CHECKED_CONFIGS:  # Tune keeps every trial in its experiment state; so does the dry run's plan
        raise UserError(f"{trials} trials: a sweep runs at most {MAX_CHECKED_CONFIGS}; lower --num-samples or the "
                        f"grid")
    split = selection_split(configs)
    refit = part.refit if part is not None else settings.refit
    if refit and split != "val":
        raise UserError("--refit re-trains the configurations chosen on the validation split, and this sweep has "
                        "none (val_fraction = 0): drop --refit or give val_fraction > 0")
    protocol = part.protocol if part is not None else (REFIT_PROTOCOL if refit else SEARCH_PROTOCOL)
    return Plan(space, name, values, configs, trials, longest, split, refit, protocol)


def sweep_parts(settings: SweepSettings) -> list[tuple[SearchSpace, str, RecipePart | None]]:
    """(space, run name, recipe part) per sweep to run: the space, or each part of the recipe."""
    if settings.recipe:
        recipe = get_recipe(settings.recipe)
        name = settings.name or f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        # A recipe's parts are sweeps of their own; running the recipe again continues the unfinished ones.
        return [(part.space, f"{name}-{part.name}", part) for part in recipe.parts]
    try:
        space = get_space(settings.space)
    except SpaceError as error:
        raise UserError(str(error)) from None
    return [(space, settings.name or f"{space.name}-{settings.dataset}-{time.strftime('%Y%m%d-%H%M%S')}", None)]


def plans_for(settings: SweepSettings) -> list[Plan]:
    """The plan of every sweep to run (one per recipe part): what --dry-run prints and the sweep runs."""
    return [plan(settings, space, name, part) for space, name, part in sweep_parts(settings)]
