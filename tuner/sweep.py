"""The sweep: a named search space over transfer methods and hyper-parameters, on a laptop or a cluster.

    python -m tuner.sweep --space lambda_feat [--search grid|random|optuna|optuna-mo] [--scheduler fifo|asha]
        [--gpus-per-trial 0.25] [--address auto] [--storage s3://bucket/runs] [--resume] ...

Ray Tune runs the trials (OptunaSearch with TPE, multi-objective for optuna-mo; grid/random through Tune's
basic variant generator; ASHA on validation accuracy), then the final stage attacks the checkpoints chosen by
their validation numbers, scores them on validation and test, and the report is written.
RUN_DIR = STORAGE/NAME holds trials.parquet, robustness.parquet, sweep.json, report/.
"""
import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, Integer

from search_spaces import SPACES, SearchSpace, SpaceError, get_space
from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack import attack_config
from trainables.config import resolve_config, selection_metrics
from trainables.data.registry import EMBEDDED_DATASETS, dataset_summary
from trainables.errors import UserError
from trainables.methods import get_method
from trainables.threads import use_threads
from trainables.trainable import transfer_trainable
from trainables.trial import pretrained_for
from tuner.attack import default_attack_preset, run_attack_stage, stopped_early
from tuner.cli import OneLineErrorParser, add_trial_arguments, parse_assignments, run_cli
from tuner.progress import ProgressCallback
from tuner.recipes import RECIPE_ATTACK_PRESET, RECIPES, get_recipe
from tuner.report import build_report
from tuner.report_render import front_digest
from tuner.spaces import SEARCHES, param_space
from tuner.run_dir import (ROBUSTNESS_TABLE, SWEEP_RECORD, TRIALS_TABLE, join, location, package_versions,
                           read_json, write_json, write_rows)
from tuner.trials_table import trial_rows, unfinished

SCHEDULERS = ("fifo", "asha")
# Config keys that decide which pretrained model and which images an adversarial set is crafted from.
ADVERSARIAL_SET_KEYS = ("dataset", "data_root", "arch", "weights", "source_images", "source_iters", "cache_dir",
                        "val_fraction")


class PruningOptunaSearch(OptunaSearch):
    """Trials a scheduler stopped early reach Optuna as PRUNED, not COMPLETE with a partial score
    (Ray's OptunaSearch reports whatever the last result was)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, None if result and stopped_early(result) else result, error)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="python -m tuner.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="lambda_feat", help=f"{', '.join(SPACES)}, or a .yaml/.json file")
    parser.add_argument("--recipe", help=f"run a paper table or figure instead of --space: {', '.join(RECIPES)}")
    parser.add_argument("--method", help="restrict the space to one method")
    add_trial_arguments(parser)
    parser.add_argument("--search", default="grid", help=f"{', '.join(SEARCHES)}")
    parser.add_argument("--num-samples", type=int, default=1,
                        help="trials to sample (random/optuna), or repeats of the grid")
    parser.add_argument("--scheduler", default="fifo", help=f"{', '.join(SCHEDULERS)} (ASHA on clean accuracy)")
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--gpus-per-trial", type=float, default=0, help="fractions like 0.25 pack trials per GPU")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    parser.add_argument("--address", help="an existing Ray cluster ('auto' or host:port); default: start one here")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started here (default: all)")
    parser.add_argument("--num-gpus", type=float, help="GPUs of the local Ray started here (default: detected)")
    parser.add_argument("--storage", default=str(Path("runs").resolve()), help="absolute path or URI (s3://...)")
    parser.add_argument("--name", help="run name (default: <space>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name")
    parser.add_argument("--seed", type=int, default=0, help="trial seed (unless the space sweeps it) and "
                                                            "searcher seed")
    parser.add_argument("--attack", help="final-stage preset: paper, code, embedded or digits (default by dataset; "
                                         "recipes: code)")
    parser.add_argument("--no-attack", action="store_true", help="skip the final attack stage and report")
    parser.add_argument("--top-k", type=int, help="attack only the K best trials by validation accuracy")
    parser.add_argument("--select", default="clean", help="which trials the final stage attacks, by their "
                                                          "validation numbers: clean, pareto, all")
    parser.add_argument("--include-stopped", action="store_true",
                        help="treat trials ASHA stopped early as results: selectable, on the Pareto front")
    return parser.parse_args(argv)


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


def searcher(search: str, seed: int, split: str):
    accuracy, asr = selection_metrics(split)
    if search == "optuna":
        return PruningOptunaSearch(metric=accuracy, mode="max", sampler=optuna.samplers.TPESampler(seed=seed))
    if search == "optuna-mo":
        # Searcher and scheduler get their own metrics: TuneConfig(metric=...) would make this single-objective.
        return PruningOptunaSearch(metric=[accuracy, asr], mode=["max", "min"],
                                   sampler=optuna.samplers.TPESampler(seed=seed))
    return None  # Tune's basic variant generator: grid_search and random sampling


def scheduler(name: str, longest: int, eval_every: int, split: str):
    if name not in SCHEDULERS:
        raise UserError(f"unknown --scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    if name == "fifo":
        return FIFOScheduler()
    grace = max(eval_every, longest // 9)
    return ASHAScheduler(time_attr="iteration", metric=selection_metrics(split)[0], mode="max", max_t=longest,
                         grace_period=grace, reduction_factor=3)


def check_args(args: argparse.Namespace) -> None:
    if args.num_samples <= 0:
        raise UserError(f"--num-samples {args.num_samples} must be > 0")
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise UserError(f"--cpus-per-trial must be > 0 and --gpus-per-trial >= 0 "
                        f"(got {args.cpus_per_trial}, {args.gpus_per_trial})")
    if args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial):
        raise UserError(f"--gpus-per-trial {args.gpus_per_trial}: above 1 it must be a whole number")
    if args.max_concurrent is not None and args.max_concurrent <= 0:
        raise UserError(f"--max-concurrent {args.max_concurrent} must be > 0")
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k {args.top_k} must be > 0")
    if args.resume and not args.name:
        raise UserError("--resume needs --name: the sweep to continue")


def sweep_record(args: argparse.Namespace, space_name: str, run_dir: str) -> dict:
    return {"space": space_name, "run_dir": run_dir, "argv": sys.argv[1:], "settings": vars(args),
            "versions": package_versions(), "written_at": time.time()}


def resumed_args(args: argparse.Namespace, run_dir: str) -> argparse.Namespace:
    """The interrupted sweep's own settings; only where to find it and which cluster to use come from now."""
    record = read_json(join(run_dir, SWEEP_RECORD))
    if record is None or not tune.Tuner.can_restore(run_dir):
        raise UserError(f"--resume: no sweep to continue at {run_dir}")
    return argparse.Namespace(**{**vars(parse_args([])), **record["settings"], "resume": True, "name": args.name,
                                 "storage": args.storage, "address": args.address})


def check_datasets(configs: list) -> None:
    """Every paper dataset's layout, checked here in one line rather than in every trial on the cluster."""
    for dataset, data_root, fraction, val_fraction in sorted(
            {(c.dataset, c.data_root, c.fraction, c.val_fraction) for c in configs
             if c.dataset not in EMBEDDED_DATASETS}, key=str):
        dataset_summary(dataset, data_root, fraction, val_fraction=val_fraction)


def selection_split(configs: list) -> str:
    """The one split every trial of the sweep is selected on: schedulers and searchers compare trials by it."""
    splits = {config.selection_split for config in configs}
    if len(splits) > 1:
        raise UserError("val_fraction must be > 0 for every trial of a sweep or 0 for every trial; "
                        "this space mixes both, so trials could not be compared on one split")
    return splits.pop()


def check_one_set_per_trial(values: dict) -> None:
    """optuna-mo hands each trial the adversarial set of its own pretrained model and data: a value sampled
    from a range would need a set per trial."""
    for key in ADVERSARIAL_SET_KEYS:
        if isinstance(values.get(key), (Float, Integer)):
            raise UserError(f"--search optuna-mo: {key} is sampled from a range, so every trial would need its "
                            f"own adversarial set; give {key} as a grid or a choice")


@dataclass(frozen=True)
class Plan:
    """One sweep, validated before Ray starts: its Tune param_space and every config it can produce."""

    space: SearchSpace
    name: str
    values: dict
    configs: list
    expected_trials: int
    longest: int
    split: str  # the selection split: "val", or "test" when val_fraction = 0


def plan(args: argparse.Namespace, space: SearchSpace, name: str) -> Plan:
    """User mistakes in the space, the flags or the data surface here, as one line, before any work."""
    values = param_space(space, args.search, config_defaults(args), args.method, config_overrides(args))
    configs = [resolve_config(config) for config in trial_configs(values)]
    check_datasets(configs)
    if args.search == "optuna-mo":
        check_one_set_per_trial(values)
    swa_swept = "swa" in space.parameters
    longest = max(config.iters + (config.swa_iters if config.swa or swa_swept else 0) for config in configs)
    grid_points = math.prod(len(v["grid_search"]) for v in values.values() if isinstance(v, dict) and "grid_search" in v)
    return Plan(space, name, values, configs, args.num_samples * (grid_points if args.search == "grid" else 1),
                longest, selection_split(configs))


def final_stage_preset(args: argparse.Namespace) -> str | None:
    """The attack preset the user chose; recipes default to the one that produced the published numbers (the
    authors' evaluation script); None: each dataset's default."""
    return args.attack or (RECIPE_ATTACK_PRESET if args.recipe else None)


def selection_sets(args: argparse.Namespace, planned: Plan) -> dict:
    """One adversarial set on the selection split per distinct pretrained model and data among the planned
    trials, crafted before the trials and put in Ray's object store; each trial fetches its own."""
    sets = {}
    for config in planned.configs:
        attack = attack_config(final_stage_preset(args) or default_attack_preset(config.dataset))
        spec = AdversarialSetSpec.from_trial(config, attack, planned.split)
        if spec not in sets:
            sets[spec] = ray.put(adversarial_set(spec).adversarial_images())
    return sets


def warm_up_sources(args: argparse.Namespace, configs: list) -> None:
    """Find or pretrain each source model here, where its progress is visible, not in many trials at once."""
    sources = {(c.arch, c.weights, c.source_images, c.source_iters, c.cache_dir): c for c in configs
               if get_method(c.method).needs_pretrained or args.search == "optuna-mo"}
    for config in sources.values():
        pretrained_for(config)


def new_tuner(args: argparse.Namespace, planned: Plan, storage: str, trainable) -> tune.Tuner:
    return tune.Tuner(
        trainable, param_space=planned.values,
        run_config=tune.RunConfig(
            name=planned.name, storage_path=storage, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=2),  # e.g. a CUDA OOM when fractions overpack a GPU
            callbacks=[ProgressCallback(set(planned.space.parameters), planned.expected_trials, planned.split)],
        ),
        tune_config=tune.TuneConfig(
            search_alg=searcher(args.search, args.seed, planned.split),
            scheduler=scheduler(args.scheduler, planned.longest, min(c.eval_every for c in planned.configs),
                                planned.split),
            num_samples=args.num_samples, max_concurrent_trials=args.max_concurrent, reuse_actors=True,
        ),
    )


def sweep_trainable(args: argparse.Namespace, planned: Plan):
    """The trainable with this sweep's resources (and, for optuna-mo, its adversarial sets)."""
    trainable = transfer_trainable
    if args.search == "optuna-mo":
        trainable = tune.with_parameters(transfer_trainable, adversarial_sets=selection_sets(args, planned))
    return tune.with_resources(trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})


def sweep_tuner(args: argparse.Namespace, planned: Plan, storage: str, extra: dict) -> tune.Tuner:
    """A new Tuner (its sweep.json written), or the interrupted one restored."""
    run_dir, trainable = join(storage, planned.name), sweep_trainable(args, planned)
    if args.resume:
        return tune.Tuner.restore(run_dir, trainable=trainable, resume_unfinished=True, resume_errored=True)
    tuner = new_tuner(args, planned, storage, trainable)
    write_json(sweep_record(args, planned.space.name, run_dir) | extra, join(run_dir, SWEEP_RECORD))
    return tuner


def collect_trials(args: argparse.Namespace, planned: Plan, storage: str) -> str:
    """trials.parquet from the experiment state; exits 130 with the command that continues an interrupted
    sweep. Returns the run directory."""
    run_dir = join(storage, planned.name)
    analysis = ExperimentAnalysis(run_dir)
    write_rows(trial_rows(analysis), join(run_dir, TRIALS_TABLE))
    print(f"trials table: {join(run_dir, TRIALS_TABLE)}")
    waiting = len(unfinished(analysis)) + max(0, planned.expected_trials - len(analysis.trials))
    if waiting:
        again = f"--recipe {args.recipe} --name {args.name}" if args.recipe else f"--resume --name {planned.name}"
        print(f"interrupted with {waiting} of {planned.expected_trials} trials unfinished; continue with: "
              f"python -m tuner.sweep {again} --storage {storage}", file=sys.stderr)
        raise SystemExit(130)
    return run_dir


def run_trials(args: argparse.Namespace, planned: Plan, storage: str, extra: dict) -> str:
    """One sweep (resumed when args.resume); returns its run directory once every trial ended."""
    warm_up_sources(args, planned.configs)
    tuner = sweep_tuner(args, planned, storage, extra)
    started = time.time()
    print(f"sweep {planned.name}: space {planned.space.name} ({planned.space.description}); {args.search} search, "
          f"{args.scheduler} scheduler; results in {join(storage, planned.name)}", flush=True)
    results = tuner.fit()
    print(f"trials done in {time.time() - started:.0f} s: {len(results)} trials, {results.num_errors} failed")
    return collect_trials(args, planned, storage)


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


def start_ray(args: argparse.Namespace) -> None:
    if args.address:
        ray.init(address=args.address, configure_logging=False, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=args.num_cpus, num_gpus=args.num_gpus, include_dashboard=False,
                 configure_logging=False, log_to_driver=False)


def attack_and_report(args: argparse.Namespace, run_dirs: list[str]) -> None:
    for run_dir in run_dirs:
        run_attack_stage(run_dir, args.select, args.top_k, final_stage_preset(args),
                         include_stopped=args.include_stopped)
        print(f"robustness table: {join(run_dir, ROBUSTNESS_TABLE)}")
    report, summary = build_report(run_dirs, recipe=args.recipe, include_stopped=args.include_stopped)
    print("\n".join(front_digest(summary)))
    print(f"report: {report}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_args(args)
    # The driver warms up sources, crafts and scores between the trials' phases: the local CPUs Ray gets.
    use_threads(None if args.address else args.num_cpus)
    storage = location(args.storage)
    if args.resume:
        args = resumed_args(args, join(storage, args.name))
    plans = [plan(args, space, name) for space, name in sweep_parts(args)]
    start_ray(args)
    run_dirs = []
    for planned in plans:
        part_args = args
        if args.recipe and read_json(join(join(storage, planned.name), SWEEP_RECORD)) is not None:
            part_args = argparse.Namespace(**{**vars(args), "resume": True})
        run_dirs.append(run_trials(part_args, planned, storage, {"recipe": args.recipe} if args.recipe else {}))
    if not args.no_attack:
        attack_and_report(args, run_dirs)


if __name__ == "__main__":
    run_cli(main)
