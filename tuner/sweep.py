"""The sweep: a named search space over transfer methods and hyper-parameters, on a laptop or a cluster.

    python -m tuner.sweep --space lambda_feat [--search grid|random|optuna|optuna-mo] [--scheduler fifo|asha|mo-asha]
        [--gpus-per-trial 0.25|auto] [--address auto] [--storage s3://bucket/runs] [--resume] [--dry-run] ...

Ray Tune runs the trials (OptunaSearch with TPE, multi-objective for optuna-mo; grid/random through Tune's
basic variant generator; ASHA on validation accuracy, MO-ASHA on validation accuracy and ASR), then the final
stage attacks the checkpoints chosen by their validation numbers, scores them on validation and test, and the
report is written.
RUN_DIR = STORAGE/NAME holds trials.parquet, robustness.parquet, sweep.json, ray.log, report/.

This module is the command line alone and imports neither torch nor Ray (a quick --help): it parses the flags
into a `tuner.settings.SweepSettings`, validated there; the work is in `tuner.sweep_run`, and
`tuner.api.run_sweep` builds the same settings for Python callers.
"""
import argparse
import json
import sys
from pathlib import Path

from search_spaces import SPACES, SpaceError, get_space
from trainables.errors import UserError
from trainables.methods import METHODS
from tuner.cli import (
    SCHEDULERS,
    SEARCHES,
    OneLineErrorParser,
    add_attack_arguments,
    add_resource_arguments,
    add_trial_arguments,
    run_cli,
)
from tuner.recipes import RECIPES
from tuner.settings import SweepSettings

# The flags that inspect instead of sweeping: not settings of a sweep.
INSPECTION_FLAGS = ("list_spaces", "show_space")


def command_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m tuner.sweep", description=__doc__.splitlines()[0])
    what = parser.add_argument_group("what to sweep")
    what.add_argument("--space", default="lambda_feat",
                      help=f"a named space ({', '.join(SPACES)}; see --list-spaces) or a .yaml/.json file")
    what.add_argument("--recipe", choices=tuple(RECIPES), metavar="RECIPE",
                      help=f"run a paper table or figure instead of --space: {', '.join(RECIPES)}")
    what.add_argument("--method", choices=tuple(METHODS), metavar="METHOD",
                      help=f"restrict the space to one method: {', '.join(METHODS)}")
    add_trial_arguments(what)
    what.add_argument("--seed", type=int, default=0, help="trial seed (unless the space sweeps it) and searcher seed")
    how = parser.add_argument_group("how to search")
    how.add_argument("--search", default="grid", choices=SEARCHES, help="search algorithm")
    how.add_argument("--num-samples", type=int, default=1, help="trials to sample (random/optuna), or repeats of "
                                                                "the grid")
    how.add_argument("--scheduler", default="fifo", choices=SCHEDULERS,
                     help="early stopping: none (fifo), ASHA on validation accuracy, or MO-ASHA on "
                          "validation accuracy and ASR (mo-asha)")
    where = parser.add_argument_group("where it runs")
    add_resource_arguments(where, auto_gpus=True)
    where.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    where.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started here (default: all)")
    where.add_argument("--num-gpus", type=float, help="GPUs of the local Ray started here (default: detected)")
    _add_run_arguments(parser.add_argument_group("the run directory"))
    final = parser.add_argument_group("the final stage")
    add_attack_arguments(final)
    final.add_argument("--min-accuracy", type=float, metavar="PCT",
                       help="the report leaves configurations below this mean validation accuracy (%%) off its "
                            "Pareto fronts, marked")
    final.add_argument("--no-attack", action="store_true", help="skip the final attack stage and the report")
    final.add_argument("--refit", action="store_true",
                       help="after the final stage, re-train each method's best configuration and the Pareto set "
                            "(chosen on validation) on training + validation images with the same seeds, and report "
                            "their test numbers (GridSearchCV(refit=True)); recipes refit the parts they tune")
    _add_inspection_arguments(parser.add_argument_group("look before running"))
    return parser


def _add_run_arguments(group) -> None:
    group.add_argument("--storage", default=str(Path("runs").resolve()), help="absolute path or URI (s3://...)")
    group.add_argument("--name", help="run name (default: <space>-<dataset>-<time>)")
    group.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing run directory --name instead of refusing")
    group.add_argument("--verbose", action="store_true", help="Ray's own output on the console too, not only "
                                                              "in RUN_DIR/ray.log")
    group.add_argument("--mlflow-uri", help="also log every trial to this MLflow tracking URI (e.g. file:./mlruns; "
                                            "needs the mlflow extra)")


def _add_inspection_arguments(group) -> None:
    group.add_argument("--dry-run", action="store_true",
                       help="print the plan (trials, iterations, estimated CPU/GPU-hours from a measured step, "
                            "checkpoint disk) and exit without starting Ray")
    group.add_argument("--list-spaces", action="store_true", help="list the named search spaces and exit")
    group.add_argument("--show-space", metavar="NAME", help="print a search space (name or file) as JSON and exit")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return command_parser().parse_args(argv)


def settings_from(args: argparse.Namespace) -> SweepSettings:
    """The parsed flags as the sweep's settings, checked there (each mistake one line)."""
    return SweepSettings(**{key: value for key, value in vars(args).items() if key not in INSPECTION_FLAGS})


def parse_settings(argv: list[str] | None) -> SweepSettings:
    return settings_from(parse_args(argv))


def list_spaces() -> str:
    width = max(map(len, SPACES))
    return "\n".join(f"{name:<{width}}  {space.description}" for name, space in SPACES.items())


def show_space(name: str) -> str:
    try:
        space = get_space(name)
    except SpaceError as error:
        raise UserError(str(error)) from None
    return json.dumps({"name": space.name, "description": space.description, "source": space.source,
                       "methods": list(space.methods), "parameters": space.parameters, "fixed": space.fixed},
                      indent=2, default=str)  # a YAML file's dates and binaries, as text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list_spaces or args.show_space:
        print(list_spaces() if args.list_spaces else show_space(args.show_space))
        return
    settings = settings_from(args)
    from tuner.sweep_run import SweepInterrupted, run_sweep_settings  # torch and Ray: only once there is work
    try:
        run_sweep_settings(settings)
    except SweepInterrupted as interrupted:
        print(interrupted, file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run_cli(main)
