"""Ray's own output (its start-up notices, Tune's tables and warnings, its processes' logs) into a log file,
so the console shows the sweep's progress alone.

Ray prints from Python, from its C++ core and from the processes it starts, so the redirection is of the file
descriptors 1 and 2, which those processes inherit. The sweep's own lines go to `console()`: a copy of the
original stdout while the redirection lasts. (A module-level stream, not a callback attribute: Tune pickles
its callbacks into the experiment state.)
"""
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from trainables.cache import cache_root
from tuner.run_dir import RAY_LOG, is_uri, join

_console: TextIO | None = None


def console() -> TextIO:
    """Where the sweep's own lines go: the real console, even while Ray's output goes to its log."""
    return _console or sys.stdout


def _console_copy() -> TextIO:
    """A copy of the real stdout, or whatever replaced sys.stdout (a notebook, a test's capture), which fd
    redirection leaves alone anyway."""
    try:
        if sys.stdout.fileno() == 1:
            return os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):
        pass
    return sys.stdout


def ray_log_file(storage: str, name: str) -> Path:
    """Where a command's Ray output goes: RUN_DIR/ray.log, or a local file named after the run beside a remote
    run directory."""
    run_dir = join(storage, name)
    return cache_root() / "logs" / f"{name}.log" if is_uri(run_dir) else Path(run_dir) / RAY_LOG


@contextmanager
def ray_output_to(log_file: Path | None) -> Iterator[None]:
    """fds 1 and 2 append to `log_file` inside the block and are restored after it, however it ends; None
    leaves them alone (--verbose)."""
    global _console
    if log_file is None or _console is not None:  # not asked, or already redirected by an outer block
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _console, saved = _console_copy(), (os.dup(1), os.dup(2))
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for target, copy in zip((1, 2), saved):
            os.dup2(copy, target)
            os.close(copy)
        if _console is not sys.stdout:
            _console.close()
        _console = None
