"""Shared fixtures: a private cache directory and a tiny, fast version of the embedded default."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Every test pretrains into / reads from a throw-away cache, never the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("renotune-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("RENOTUNE_CACHE", str(cache))
    yield cache
    patcher.undo()


@pytest.fixture(autouse=True)
def single_thread():
    """Deterministic CPU kernels for bit-exact comparisons."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_SOURCE = {"arch": "resnet18_w8", "source_images": 400, "source_iters": 20}


def tiny_config(method: str, **overrides) -> dict:
    """A trial of `method` on digits small enough for a unit test (seconds, not minutes)."""
    return {
        "method": method, "dataset": "digits", **TINY_SOURCE, "fraction": 0.1, "batch_size": 16,
        "iters": 6, "swa_iters": 4, "swa_every": 2, "eval_every": 3, **overrides,
    }
