"""One writer per run directory: a sweep holds its run directory's lock from before it touches the directory
until it ends, and a final stage (a sweep's own, or `tuner.attack`) holds a second one while it writes
robustness.parquet, so two commands never interleave rows or continue the same trials twice.

The locks are `flock`s (filelock): the operating system releases them when their process dies, so a killed
sweep never leaves a stale lock behind. A local run directory holds its lock files; a remote one (s3://, gs://)
is locked on this machine only, under the cache directory (object stores have no locks).
"""
import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from trainables.cache import cache_root
from trainables.errors import UserError
from tuner.run_dir import is_uri, run_name

SWEEP_LOCK = ".sweep.lock"
FINAL_STAGE_LOCK = ".final-stage.lock"
LOCK_FILES = (SWEEP_LOCK, FINAL_STAGE_LOCK)


def lock_path(run_dir: str, lock_name: str) -> Path:
    if is_uri(run_dir):
        digest = hashlib.sha256(run_dir.encode()).hexdigest()[:16]
        return cache_root() / "locks" / f"{run_name(run_dir)}-{digest}{lock_name}"
    return Path(run_dir) / lock_name


@contextmanager
def holding(run_dir: str, lock_name: str, refusal: str) -> Iterator[None]:
    """Hold `run_dir`'s lock `lock_name` for the block; UserError(`refusal`) at once when another process holds
    it. A local run directory this creates and leaves holding nothing but lock files is removed again."""
    path = lock_path(run_dir, lock_name)
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {path.parent}: {error.strerror or error}") from None
    lock = FileLock(str(path), blocking=False)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(refusal) from None
    except OSError as error:  # a read-only or full file system
        raise UserError(f"cannot lock {path}: {error.strerror or error}") from None
    try:
        yield
    finally:
        lock.release()
        if created and not is_uri(run_dir) and {p.name for p in path.parent.iterdir()} <= set(LOCK_FILES):
            for lock_file in path.parent.iterdir():
                lock_file.unlink(missing_ok=True)
            path.parent.rmdir()


@contextmanager
def sweep_locks(run_dirs: list[str]) -> Iterator[None]:
    """Every part's run directory locked for a whole sweep."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(holding(run_dir, SWEEP_LOCK, (
                f"run directory {run_dir} is in use by another sweep right now: wait for it to end, or choose "
                f"another --name")))
        yield


def final_stage_lock(run_dir: str):
    return holding(run_dir, FINAL_STAGE_LOCK, (
        f"another final stage is attacking {run_dir}'s checkpoints right now: wait for it to end (its rows are "
        f"kept, and a rerun scores only what is missing)"))
