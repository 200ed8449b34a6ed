"""Shared behaviour of every `python -m tuner.*` command: one error style (one `error:` line, exit 2), no
abbreviated flags, defaults shown in --help, and the flags several commands share, spelled the same in each.

Nothing here imports torch or Ray, so every command's --help is quick.
"""
import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from trainables.attack_presets import ATTACK_PRESETS
from trainables.data.specs import dataset_names
from trainables.errors import UserError

SEARCHES = ("grid", "random", "optuna", "optuna-mo")
SCHEDULERS = ("fifo", "asha", "mo-asha")
# The final stage's choices of which checkpoints to attack, by their selection-split numbers.
SELECTIONS = ("clean", "pareto", "all")
GPUS_AUTO = "auto"  # --gpus-per-trial auto (tuner.gpu_packing)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown after each flag's help, but not "(default: None)" for flags that have none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default in (argparse.SUPPRESS, []):
            return action.help or ""
        return super()._get_help_string(action)


class OneLineErrorParser(argparse.ArgumentParser):
    """Every command's parser: argument mistakes become a UserError, so they print as one `error:` line and exit
    2 like every other user mistake; a flag must be spelled out (an abbreviation silently meaning another flag
    once started a full default sweep)."""

    def __init__(self, **options):
        super().__init__(allow_abbrev=False, formatter_class=HelpFormatter, **options)

    def error(self, message: str) -> NoReturn:
        raise UserError(message)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]):
        # Python 3.11's argparse drops the value of `--flag=--` and hands the flag an empty list.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    try:
        main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def check_min_accuracy(min_accuracy: float | None) -> None:
    if min_accuracy is not None and not 0 <= min_accuracy <= 100:  # NaN fails both comparisons too
        raise UserError(f"--min-accuracy {min_accuracy:g} is not a percentage in [0, 100]")


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` flags as a dict (values stay strings; the trial config casts them)."""
    values = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UserError(f"--set {item!r} must look like KEY=VALUE")
        values[key] = value
    return values


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe the task and the budget of every trial, shared by tuner.train and tuner.sweep."""
    parser.add_argument("--dataset", default="novel_shapes", choices=dataset_names(), metavar="DATASET",
                        help=f"the target task: {', '.join(dataset_names())}")
    parser.add_argument("--data-root", help="where the dataset's official archive (or image folder) was unpacked")
    parser.add_argument("--arch", help="backbone: resnet18_w<WIDTH> (the embedded default's), or any torchvision "
                                       "classification model name (default: the dataset's)")
    parser.add_argument("--weights", help="torchvision-format state dict of the pretrained model")
    parser.add_argument("--fraction", type=float, help="share of each class's training images to keep, in (0, 1]")
    parser.add_argument("--skip-unreadable-images", action="store_true",
                        help="leave image files that do not decode (truncated, corrupt) out of the dataset, with a "
                             "warning that counts them, instead of stopping with an error that names the first")
    parser.add_argument("--iters", type=int, help="main-stage iterations per trial; SWA, eval and checkpoint "
                                                  "intervals scale along (small for demos)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any trial config value, for every trial (e.g. --set batch_size=32)")


def gpus_per_trial_type(auto: bool) -> Callable[[str], float | str]:
    """--gpus-per-trial's values: a number, or `auto` where packing trials onto GPUs is decided (a sweep)."""
    def gpus_per_trial(text: str) -> float | str:
        if text == GPUS_AUTO:
            if auto:
                return GPUS_AUTO
            raise argparse.ArgumentTypeError("auto chooses how many of a sweep's trials share a GPU; one trial "
                                             "takes a number (1: a whole GPU)")
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor auto" if auto else
                                             f"invalid float value: {text!r}") from None
    return gpus_per_trial


def add_resource_arguments(parser: argparse.ArgumentParser, auto_gpus: bool = False) -> None:
    """Where trials run and what each gets: the same flags for one trial (tuner.train) and for a sweep
    (`auto_gpus`: --gpus-per-trial auto, measured before the trials start)."""
    parser.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs per trial (its torch threads)")
    auto_help = ("; auto measures one trial alone on this machine's GPU before the trials start and packs as "
                 "many per GPU (1, 2, 4 or 8) as its idle time and memory allow") if auto_gpus else ""
    parser.add_argument("--gpus-per-trial", type=gpus_per_trial_type(auto_gpus), default=0, metavar="GPUS",
                        help="GPUs per trial; fractions like 0.25 pack trials onto one GPU" + auto_help)
    parser.add_argument("--address", help="an existing Ray cluster ('auto' or host:port); default: start one here")


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The final stage's attack: the same flags in tuner.attack and tuner.sweep."""
    parser.add_argument("--attack", choices=tuple(ATTACK_PRESETS), metavar="PRESET",
                        help=f"attack preset: {', '.join(ATTACK_PRESETS)} (default: digits on digits, embedded on "
                             "the other embedded datasets, paper otherwise; recipes: code)")
    parser.add_argument("--budget", type=float, help="L-inf budget B, in the preset's units (default: the preset's)")
    parser.add_argument("--step", type=float, help="PGD step size, in the preset's units (default: the preset's)")
    parser.add_argument("--attack-iters", type=int, help="PGD iterations (default: the preset's)")
    parser.add_argument("--select", default="clean", choices=SELECTIONS,
                        help="which trials the final stage attacks, judged by their validation numbers: every "
                             "trial most accurate first (clean; with --top-k the best K), the accuracy/ASR Pareto "
                             "front (pareto), or all")
    parser.add_argument("--top-k", type=int, help="attack at most this many checkpoints")
    parser.add_argument("--include-stopped", action="store_true",
                        help="treat trials a scheduler stopped early as results: selectable, on the Pareto front")
