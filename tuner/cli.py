"""Shared behaviour of every `python -m tuner.*` command: user mistakes become one line and exit 2."""
import sys
from collections.abc import Callable

from trainables.errors import UserError


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    try:
        main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
