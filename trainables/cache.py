"""Where the project keeps what it builds once and reuses: pretrained source models, adversarial sets."""
import os
from pathlib import Path

CACHE_ENV_VAR = "RENOTUNE_CACHE"


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """The cache directory: an explicit override, else $RENOTUNE_CACHE, else ~/.cache/renotune."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "renotune"
