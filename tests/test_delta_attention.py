"""DELTA with channel attention (`delta_att`): its penalty and its attention against by-hand computations, its
checkpointing, and that its one spec line is all the spaces, tables and figures need."""
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from search_spaces import get_space
from tests.conftest import tiny_config
from tests.test_report import report_at, robustness_row, trial_config
from trainables.config import resolve_config
from trainables.delta_attention import (ATTENTION_TEMPERATURE, AttentiveFeatureDistillation, attention_images,
                                        attention_weighted_distance)
from trainables.methods import METHODS
from trainables.regularizers import RunParts, feature_distillation
from trainables.trial import prepare_run
from tuner import plots
from tuner.run_dir import write_rows


def test_penalty_is_the_attention_weighted_channel_mse():
    generator = torch.Generator().manual_seed(0)
    student = [torch.randn(3, 4, 5, 5, generator=generator), torch.randn(3, 2, 2, 2, generator=generator)]
    teacher = [torch.randn(3, 4, 5, 5, generator=generator), torch.randn(3, 2, 2, 2, generator=generator)]
    attention = [torch.softmax(torch.randn(4, generator=generator), 0), torch.tensor([0.25, 0.75])]
    expected = 0.0
    for s, t, weights in zip(student, teacher, attention):
        batch, channels, height, width = s.shape
        for c in range(channels):
            squares = [float(s[b, c, h, w] - t[b, c, h, w]) ** 2
                       for b in range(batch) for h in range(height) for w in range(width)]
            expected += float(weights[c]) * sum(squares) / len(squares)
    assert attention_weighted_distance(student, teacher, attention).item() == pytest.approx(expected, rel=1e-5)
    uniform = [torch.full((4,), 0.25), torch.full((2,), 0.5)]
    assert attention_weighted_distance(student, teacher, uniform).item() == pytest.approx(
        feature_distillation(student, teacher).item(), rel=1e-5)  # uniform attention is plain DELTA


def logits_with_channel_zeroed(network, head, images: torch.Tensor, stage: int, channel: int) -> torch.Tensor:
    """ResNet's forward written out by hand, channel `channel` of stage `stage` set to zero."""
    body = network.body
    x = (images - network.mean) / network.std
    x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
    for index, layer in enumerate((body.layer1, body.layer2, body.layer3, body.layer4)):
        x = layer(x)
        if index == stage:
            x = x.clone()
            x[:, channel] = 0.0
    return head(torch.flatten(body.avgpool(x), 1))


def test_channel_attention_matches_a_by_hand_computation():
    config = resolve_config(tiny_config("delta_att"))
    run = prepare_run(config)
    regularizer = run.regularizer
    assert isinstance(regularizer, AttentiveFeatureDistillation)
    images, labels = attention_images(RunParts(config, run.student, None, run.data))
    regularizer.estimate_attention()
    teacher, head = regularizer.teacher, regularizer.probe_head
    with torch.no_grad():
        base = F.cross_entropy(head(teacher.penultimate(images)), labels).item()
        rises_per_stage = [
            [F.cross_entropy(logits_with_channel_zeroed(teacher, head, images, stage, c), labels).item() - base
             for c in range(len(weights))] for stage, weights in enumerate(regularizer.attention)]
    for weights, rises in zip(regularizer.attention, rises_per_stage, strict=True):
        mean = sum(rises) / len(rises)
        spread = math.sqrt(sum((r - mean) ** 2 for r in rises) / len(rises))
        exponentials = [math.exp((r - mean) / spread / ATTENTION_TEMPERATURE) for r in rises]
        expected = [e / sum(exponentials) for e in exponentials]
        assert weights.tolist() == pytest.approx(expected, rel=1e-3, abs=1e-6)
        assert weights.sum().item() == pytest.approx(1.0)
        assert len(set(weights.tolist())) > 1  # channels do differ in use to the task


def test_attention_is_measured_once_and_restored_from_a_checkpoint(monkeypatch):
    config = resolve_config(tiny_config("delta_att"))
    run = prepare_run(config)
    images, labels = zip(*(run.data.train[i] for i in range(config.batch_size)))
    run.step(torch.stack(images), torch.tensor(labels))
    state = run.state_dict()
    assert len(state["regularizer"]["attention"]) == len(run.student.layout.stages)

    resumed = prepare_run(config)
    monkeypatch.setattr(AttentiveFeatureDistillation, "estimate_attention",
                        lambda self: pytest.fail("a resumed run must not measure the attention again"))
    resumed.load_state_dict(state)
    resumed.step(torch.stack(images), torch.tensor(labels))
    for loaded, measured in zip(resumed.regularizer.attention, run.regularizer.attention, strict=True):
        assert torch.equal(loaded, measured)


def test_one_spec_line_puts_it_in_the_spaces_the_configs_the_tables_and_the_figures(monkeypatch, tmp_path):
    spec = METHODS["delta_att"]
    assert "delta_att" in get_space("methods").parameters["method"]["grid"]
    assert resolve_config({"method": "delta_att"}).iters == spec.embedded["iters"]
    assert resolve_config({"method": "delta_att", "dataset": "dog", "data_root": "/x"}).lambda_feat == 10.0

    rng = random.Random(0)
    rows = [robustness_row(f"{method}_{seed}", trial_config(method, "digits", seed), (90.0 - i, 50.0 - i),
                           (89.0 - i, 51.0 - i), rng) for i, method in enumerate(METHODS) for seed in (0, 1)]
    write_rows(rows, tmp_path / "robustness.parquet")
    coloured, titled = set(), set()
    monkeypatch.setattr(plots, "method_colour", lambda m, original=plots.method_colour: coloured.add(m) or original(m))
    monkeypatch.setattr(plots, "method_title", lambda m, original=plots.method_title: titled.add(m) or original(m))
    out = report_at([tmp_path], tmp_path / "report")
    assert list(json.loads((out / "summary.json").read_text())["results_table"]["rows"]) == list(METHODS)
    assert "delta_att" in coloured and "delta_att" in titled
    assert plots.method_colour("delta_att") == spec.colour and plots.method_title("delta_att") == spec.title
    assert "| delta_att |" in (out / "summary.md").read_text()
