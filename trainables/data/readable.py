"""Whether image files decode, found before any trial reads them: a truncated or corrupt file is then one line
for the user (or, when asked, left out of the dataset) instead of a failed trial on the cluster.

Each file is decoded in PIL's JPEG draft mode (libjpeg's DCT scaling to 1/8 of the side): the decoder still
reads every entropy-coded byte, so a truncated or corrupt file fails exactly as in a full decode, at less than
half its cost. The verdict on a list of files is cached under the cache directory, keyed by every file's path,
size and modification time (and PIL's version), so a later sweep on the same data decodes nothing.
"""
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image
from tqdm import tqdm

from trainables.cache import cache_root

CHECK_THREADS = 8  # PIL decodes without holding the GIL
PROGRESS_FROM_IMAGES = 2_000  # smaller lists take about a second: no progress bar


class UnreadableImage(Exception):
    """A file PIL cannot decode; the message is the reason, without the path."""


@dataclass(frozen=True)
class Unreadable:
    path: Path
    reason: str


def decode_rgb(path: Path, *, draft: bool = False) -> Image.Image:
    """The image in RGB; `draft` decodes a JPEG at reduced size, which is enough to know that it decodes."""
    try:
        with Image.open(path) as image:
            if draft:
                image.draft("RGB", (1, 1))
            return image.convert("RGB")
    except Image.UnidentifiedImageError:
        raise UnreadableImage("empty file" if _size(path) == 0 else "not an image file PIL can read") from None
    except OSError as error:
        raise UnreadableImage(error.strerror or str(error)) from None
    # PIL signals other corrupt data with unrelated exception types (SyntaxError, ValueError, EOFError, ...).
    except Exception as error:
        raise UnreadableImage(str(error).splitlines()[0] if str(error) else type(error).__name__) from None


def unreadable_images(paths: Sequence[Path], cache_dir: str | None = None,
                      what: str = "the images") -> list[Unreadable]:
    """The files of `paths` that do not decode, in list order; each list is decoded once, then cached. A long
    list shows a progress bar on stderr, named by `what`."""
    entry = cache_root(cache_dir) / "image_checks" / f"{_list_key(paths)}.json"
    cached = _read_entry(entry)
    if cached is not None:
        return cached
    with ThreadPoolExecutor(min(CHECK_THREADS, os.cpu_count() or 1)) as pool:
        verdicts = list(tqdm(pool.map(_problem, paths), total=len(paths), desc=f"checking that {what} decode (once)",
                             unit="img", file=sys.stderr, leave=False, disable=len(paths) < PROGRESS_FROM_IMAGES))
    unreadable = [Unreadable(Path(path), reason) for path, reason in zip(paths, verdicts) if reason is not None]
    _write_entry(entry, unreadable)
    return unreadable


def _problem(path: Path) -> str | None:
    try:
        decode_rgb(path, draft=True)
    except UnreadableImage as error:
        return str(error)
    return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _list_key(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"PIL {PIL.__version__}\n".encode())
    for path in paths:
        try:
            stat = os.stat(path)
            stamp = f"{stat.st_size} {stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{path}\t{stamp}\n".encode())
    return digest.hexdigest()[:24]


def _read_entry(entry: Path) -> list[Unreadable] | None:
    """The cached verdict, or None when there is none or it is damaged (then the files are decoded again)."""
    try:
        return [Unreadable(Path(path), reason) for path, reason in json.loads(entry.read_text())["unreadable"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_entry(entry: Path, unreadable: list[Unreadable]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"unreadable": [[str(item.path), item.reason] for item in unreadable]}))
    os.replace(partial, entry)  # whole or absent: concurrent checks of the same list never read half an entry
