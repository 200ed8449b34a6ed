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


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` flags as a dict (values stay strings; the trial config casts them)."""
    values = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UserError(f"--set {item!r} must look like KEY=VALUE")
        values[key] = value
    return values
