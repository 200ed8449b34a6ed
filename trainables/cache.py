"""Where the project keeps what it builds once and reuses (pretrained source models, adversarial sets, teacher
features), and how an entry's manifest vouches for its files."""
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

CACHE_ENV_VAR = "RENOTUNE_CACHE"


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """The cache directory: an explicit override, else $RENOTUNE_CACHE, else ~/.cache/renotune."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "renotune"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_manifest(directory: Path, manifest_name: str, checksums: Callable[[dict], Iterable[tuple[str, str]]],
                      what: str) -> dict | None:
    """The entry's manifest when every (file name, sha256) that `checksums` lists from it matches the file, else
    None after one line on stderr: the entry is then built again. The manifest is written last (by rename), so an
    entry interrupted while being written has none."""
    path = directory / manifest_name
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        for name, checksum in checksums(manifest):
            if file_sha256(directory / name) != checksum:
                raise ValueError(f"{name} does not match its checksum")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        print(f"{what} {directory.name} is damaged ({error}); building it again", file=sys.stderr)
        return None
    return manifest
