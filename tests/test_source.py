"""The embedded source model: shipped with its digest, rebuilt bit for bit from its recipe on pinned kernels,
pretrained once per other recipe, cached, and rebuilt if its file is broken."""
import json
import os
import subprocess
import sys

import pytest
import torch

import trainables.source as source
from trainables.config import resolve_config
from trainables.errors import UserError
from trainables.models.backbones import build_body
from trainables.models.weights import state_digest
from trainables.source_build import PINNED_KERNELS

DEFAULT_SOURCE_DIGEST = "3848ecbc4e60ac94"


def count_pretraining(monkeypatch) -> list[dict]:
    calls = []
    real = source.pretrain

    def counted(recipe):
        calls.append(recipe)
        return real(recipe)

    monkeypatch.setattr(source, "pretrain", counted)
    return calls


def test_source_is_pretrained_once_per_recipe_and_reused(tmp_path, monkeypatch, capsys):
    calls = count_pretraining(monkeypatch)
    first = source.synthetic_source("resnet18_w8", images=200, iters=4, cache_dir=str(tmp_path))
    assert "pretraining source model resnet18_w8" in capsys.readouterr().err  # progress is shown
    second = source.synthetic_source("resnet18_w8", images=200, iters=4, cache_dir=str(tmp_path))
    assert len(calls) == 1
    assert first.digest == second.digest and first.origin == second.origin
    assert list(tmp_path.glob("sources/resnet18_w8-*.pt"))
    body, _ = build_body("resnet18_w8", num_classes=20)
    body.load_state_dict(first.state)  # a complete torchvision-format state dict of the source task

    source.synthetic_source("resnet18_w8", images=200, iters=5, cache_dir=str(tmp_path))
    assert len(calls) == 2  # another recipe is another model
    assert len(list(tmp_path.glob("sources/*.pt"))) == 2


def test_a_truncated_cache_file_is_rebuilt(tmp_path, monkeypatch):
    calls = count_pretraining(monkeypatch)
    built = source.synthetic_source("resnet18_w8", images=200, iters=4, cache_dir=str(tmp_path))
    path = source.source_cache_file(source.source_recipe("resnet18_w8", 200, 4), str(tmp_path))
    path.write_bytes(path.read_bytes()[:500])
    rebuilt = source.synthetic_source("resnet18_w8", images=200, iters=4, cache_dir=str(tmp_path))
    assert len(calls) == 2
    assert rebuilt.digest == built.digest  # same recipe, same seed: the same model again
    assert torch.load(path, weights_only=True).keys() == built.state.keys()


def test_pretraining_gives_the_same_weights_whatever_the_callers_threads():
    recipe = source.source_recipe("resnet18_w8", 200, 4)
    torch.set_num_threads(2)
    with_two = state_digest(source.pretrain(recipe))
    assert torch.get_num_threads() == 2  # restored after the single-threaded pretraining
    torch.set_num_threads(1)
    assert state_digest(source.pretrain(recipe)) == with_two


def default_recipe() -> dict:
    config = resolve_config({"method": "finetune"})
    return source.source_recipe(config.arch, config.source_images, config.source_iters)


def test_the_default_source_ships_with_its_digest_and_is_never_pretrained(monkeypatch, tmp_path):
    calls = count_pretraining(monkeypatch)
    name = source.source_cache_file(default_recipe()).name
    assert json.loads(source.SHIPPED_DIGESTS.read_text()) == {name: DEFAULT_SOURCE_DIGEST}
    pretrained = source.synthetic_source(**{k: default_recipe()[k] for k in ("arch", "images", "iters")},
                                         cache_dir=str(tmp_path))
    assert pretrained.digest == DEFAULT_SOURCE_DIGEST and not calls and not list(tmp_path.iterdir())


def test_a_damaged_shipped_source_is_refused_in_one_line(monkeypatch, tmp_path):
    name = source.source_cache_file(default_recipe()).name
    state = torch.load(source.SHIPPED_SOURCES / name, weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1.0
    torch.save(state, tmp_path / name)
    (tmp_path / "digests.json").write_text(source.SHIPPED_DIGESTS.read_text())
    monkeypatch.setattr(source, "SHIPPED_SOURCES", tmp_path)
    monkeypatch.setattr(source, "SHIPPED_DIGESTS", tmp_path / "digests.json")
    with pytest.raises(UserError, match=f"not the recorded {DEFAULT_SOURCE_DIGEST}"):
        source.shipped_source(name)


def build_source(out, *recipe: str) -> str:
    """`python -m trainables.source_build` as a maintainer runs it (it re-executes itself with pinned kernels)."""
    env = {name: value for name, value in os.environ.items() if name not in PINNED_KERNELS}
    result = subprocess.run([sys.executable, "-m", "trainables.source_build", "--out", str(out), *recipe],
                            capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_source_build_runs_on_pinned_kernels_and_writes_the_weights_it_names(tmp_path):
    printed = build_source(tmp_path / "tiny.pt", "--arch", "resnet18_w8", "--images", "200", "--iters", "4")
    state = torch.load(tmp_path / "tiny.pt", weights_only=True)
    # the AVX2 paths even on a CPU with AVX-512, and the digest of what it wrote
    assert f"digest {state_digest(state)} (kernels AVX2," in printed
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.slow
def test_rebuilding_the_default_source_from_its_recipe_reproduces_the_shipped_digest(tmp_path):
    build_source(tmp_path / "default.pt")
    assert state_digest(torch.load(tmp_path / "default.pt", weights_only=True)) == DEFAULT_SOURCE_DIGEST


def test_the_pretraining_bar_moves_at_every_step(tmp_path, monkeypatch):
    updates = []

    class RecordingBar:
        def __init__(self, total: int, **options):
            self.total = total

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def update(self, steps: int) -> None:
            updates.append(steps)

        def set_postfix(self, **values) -> None:
            pass

    monkeypatch.setattr(source, "tqdm", RecordingBar)
    source.synthetic_source("resnet18_w8", images=100, iters=20, cache_dir=str(tmp_path))
    # one update per iteration, not one per evaluation (every 2 of these 20; every 300 of the real 3,000)
    assert updates == [1] * 20
