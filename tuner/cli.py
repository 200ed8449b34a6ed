"""Shared behaviour of every `python -m tuner.*` command: user mistakes become one line and exit 2."""
import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from trainables.errors import UserError


class OneLineErrorParser(argparse.ArgumentParser):
    """Every command's parser: argument mistakes become a UserError, so they print as one `error:` line and exit
    2 like every other user mistake."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    try:
        main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


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
    parser.add_argument("--dataset", default="novel_shapes")
    parser.add_argument("--data-root", help="where the dataset's official archive was unpacked")
    parser.add_argument("--arch")
    parser.add_argument("--weights", help="torchvision-format state dict of the pretrained model")
    parser.add_argument("--fraction", type=float, help="share of each class's training images to keep")
    parser.add_argument("--iters", type=int, help="main-stage iterations per trial; SWA, eval and checkpoint "
                                                  "intervals scale along (small for demos)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any trial config value, for every trial (e.g. --set batch_size=32)")
