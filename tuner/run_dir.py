"""A sweep's run directory, local or remote: its file names, and how every command reads and writes them.

RUN_DIR = STORAGE/NAME is where Ray Tune keeps the experiment; beside it the commands write
`sweep.json` (the sweep's settings), `trials.parquet` (one row per trial), `robustness.parquet` (one row per
attacked checkpoint), `ray.log` (Ray's own output) and `report/`. A location is an absolute local path or a
URI (s3://, gs://), read and written through pyarrow's filesystems; every write is atomic, so a crash never
leaves a half-written file.
"""
import errno
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

from trainables.errors import UserError

SWEEP_RECORD = "sweep.json"
TRIALS_TABLE = "trials.parquet"
ROBUSTNESS_TABLE = "robustness.parquet"
RAY_LOG = "ray.log"
REPORT_FOLDER = "report"
REFIT_EXPERIMENT = "refit"  # --refit: the refit trials' own Ray Tune experiment
REFIT_RECORD = "refit.json"  # --refit: the configurations chosen on validation and re-trained
SUMMARY_JSON = "summary.json"
SUMMARY_MARKDOWN = "summary.md"
VERSIONED_PACKAGES = ("torch", "torchvision", "ray", "optuna", "advertorch", "pyarrow", "plotly")


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def location(path_or_uri: str | Path) -> str:
    """An absolute local path or a checked URI, as Ray and pyarrow take them."""
    text = str(path_or_uri)
    if not is_uri(text):
        try:
            return str(Path(text).expanduser().resolve())
        except RuntimeError as error:  # ~name of no user here, or a symlink loop
            raise UserError(f"{text!r} is not a usable path: {error}") from None
    try:
        pyarrow.fs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, ValueError) as error:
        raise UserError(f"{text!r} is not a usable URI: {error}") from None
    return text.rstrip("/")


def join(run_dir: str, name: str) -> str:
    """`name` inside `run_dir`, keeping a URI's query (e.g. ?endpoint_override=...) at the end."""
    base, separator, query = str(run_dir).partition("?")
    return f"{base.rstrip('/')}/{name}{separator}{query}"


def run_name(run_dir: str) -> str:
    return str(run_dir).partition("?")[0].rstrip("/").rsplit("/", 1)[-1]


def _filesystem(where: str | Path) -> tuple[pyarrow.fs.FileSystem, str]:
    where = str(where)
    return pyarrow.fs.FileSystem.from_uri(where) if is_uri(where) else (pyarrow.fs.LocalFileSystem(), where)


def is_directory(where: str) -> bool:
    filesystem, path = _filesystem(where)
    return filesystem.get_file_info(path).type == pyarrow.fs.FileType.Directory


def remove(where: str, keep: tuple[str, ...] = ()) -> None:
    """Delete a run directory and everything in it but the top-level files named in `keep` (the lock its
    deleter holds)."""
    filesystem, path = _filesystem(where)
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return
    if not keep:
        filesystem.delete_dir(path)
        return
    for entry in filesystem.get_file_info(pyarrow.fs.FileSelector(path)):
        if entry.base_name in keep:
            continue
        if entry.type == pyarrow.fs.FileType.Directory:
            filesystem.delete_dir(entry.path)
        else:
            filesystem.delete_file(entry.path)


def size_in_bytes(where: str) -> int:
    """The total size of the files under `where`."""
    filesystem, path = _filesystem(where)
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return 0
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    return sum(info.size for info in infos if info.type == pyarrow.fs.FileType.File)


def human_size(size: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks are sold)."""
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            break
        size /= 1000
    return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"


class StorageError(UserError):
    """A run directory's file could not be written (full disk, read-only or unwritable storage); the file's
    previous version, if any, is untouched."""


def _write_atomically(where: str, payload: bytes) -> None:
    filesystem, path = _filesystem(where)
    try:
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(path + ".partial") as stream:
            stream.write(payload)
        filesystem.move(path + ".partial", path)  # a rename on local disks: readers see the old file or the new one
    except OSError as error:
        try:
            filesystem.delete_file(path + ".partial")
        except OSError:
            pass  # never created, or the storage refuses deletes too: the reader ignores *.partial either way
        raise StorageError(f"cannot write {where}: {storage_problem(error)}") from None


# Failures of the storage itself, as opposed to a bug: full, read-only, over quota, not ours to write.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM})


def storage_failure(error: BaseException | None) -> OSError | None:
    """The OSError of a storage failure in `error` or what caused it (Ray wraps a trial's exception and keeps
    the original as `.cause`), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    return None


def storage_problem(error: OSError) -> str:
    """'No space left on device' rather than pyarrow's long '[errno 28] ... Detail: [errno 28] ...'."""
    if error.errno is not None:
        return os.strerror(error.errno)
    return str(error).splitlines()[0]


def write_json(record: dict, where: str) -> None:
    _write_atomically(where, (json.dumps(record, indent=2, default=str, allow_nan=False) + "\n").encode())


def read_json(where: str) -> Any | None:
    """The file's JSON, None when there is no such file."""
    filesystem, path = _filesystem(where)
    try:
        if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
            return None
        with filesystem.open_input_stream(path) as stream:
            content = stream.read()
    except OSError as error:  # e.g. a --name too long for the file system
        raise UserError(f"cannot read {where}: {storage_problem(error)}") from None
    try:
        return json.loads(content)
    except json.JSONDecodeError as error:
        raise UserError(f"{where} is not valid JSON: {error}") from None


def write_rows(rows: list[dict], where: str) -> None:
    """Replace `where` with `rows` (the union of their keys as columns, None where a row lacks one)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows]), sink)
    _write_atomically(where, sink.getvalue().to_pybytes())


def read_rows(where: str) -> list[dict]:
    """The table's rows, [] when there is no such file."""
    filesystem, path = _filesystem(where)
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
        return []
    return pq.read_table(path, filesystem=filesystem).to_pylist()


def publish_folder(local: Path, where: str) -> None:
    """Copy a local folder's files to `where` (a URI), replacing what is there under the same names."""
    filesystem, path = _filesystem(where)
    filesystem.create_dir(path, recursive=True)
    for file in sorted(local.iterdir()):
        _write_atomically(join(where, file.name), file.read_bytes())


def local_staging() -> Path:
    """A fresh local folder for output headed to a URI (matplotlib and markdown write local files)."""
    return Path(tempfile.mkdtemp(prefix="renotune-"))


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def package_versions() -> dict[str, str | None]:
    """The versions of the packages a run's numbers depend on; None for one that is not installed."""
    versions: dict[str, str | None] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions
