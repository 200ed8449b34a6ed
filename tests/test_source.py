"""The embedded source model is pretrained once per recipe, cached, and rebuilt if its file is broken."""
import torch

import trainables.source as source
from trainables.models.backbones import build_body


def count_pretraining(monkeypatch) -> list[dict]:
    calls = []
    real = source._pretrain

    def counted(recipe):
        calls.append(recipe)
        return real(recipe)

    monkeypatch.setattr(source, "_pretrain", counted)
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
