"""DELTA with channel attention (`delta_att`) against by-hand computations of the authors' procedure
(github.com/lixingjian/DELTA channel_eval.py, train.py): the attended layers, the probe's fit, the loss rises and
their normalisation, the penalty's scale; its checkpointing, a short trial, and its one spec line."""
import copy
import json
import math
import random
import statistics

import pytest
import torch
import torch.nn.functional as F

from search_spaces import get_space
from tests.conftest import tiny_config
from tests.test_report import report_at, robustness_row, trial_config
from trainables.config import method_defaults, resolve_config
from trainables.delta_attention import (
    AttentiveFeatureDistillation,
    attended_layers,
    attention_from_rises,
    attention_weighted_distance,
    fit_probe_head,
    loss_rises,
)
from trainables.methods import METHODS
from trainables.models.backbones import build_skeleton
from trainables.models.network import build_network
from trainables.trial import prepare_run
from tuner import plots
from tuner.run_dir import write_rows

# Transcribed from the authors' code, not from ours: their hooked layers for ResNet-50 (train.py:129), their
# probe's optimiser (channel_eval.py:107-111; lr from run.sh:7) and their alpha (train.py:34, run.sh:15-18).
DELTA_RESNET50_LAYERS = ("layer1.2.conv3", "layer2.3.conv3", "layer3.5.conv3", "layer4.2.conv3")
THEIR_LR, THEIR_MOMENTUM, THEIR_WEIGHT_DECAY, THEIR_GAMMA = 0.01, 0.9, 1e-4, math.exp(math.log(0.1) / 6)
THEIR_ALPHA = {"default": 0.01, "dog": 0.1, "bird": 0.01}


def test_attended_layers_are_the_last_convolution_of_each_stages_last_block():
    body, layout = build_skeleton("resnet50", 2)
    assert attended_layers(body, layout.stages) == DELTA_RESNET50_LAYERS
    body, layout = build_skeleton("resnet18_w8", 2)  # BasicBlock: conv2, not the first block's downsample
    assert attended_layers(body, layout.stages) == tuple(f"layer{k}.1.conv2" for k in range(1, 5))


def tiny_network(seed: int = 0):
    """A 4-wide ResNet-18 with random weights and BatchNorm statistics, so every BatchNorm shifts and scales."""
    torch.manual_seed(seed)
    network = build_network("resnet18_w4", 3)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.normal_()
    return network


def tiny_batches(count: int, size: int = 5, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(size, 3, 16, 16, generator=generator), torch.randint(0, 3, (size,), generator=generator))
            for _ in range(count)]


def logits_with_conv2_channel_off(network, images: torch.Tensor, stage: int, channel: int) -> torch.Tensor:
    """ResNet-18's forward written out, the last block of `stage` computed by hand with output channel `channel`
    of its conv2 set to 0 before bn2: the block's BatchNorm, residual add and ReLU still follow."""
    body = network.body
    x = body.maxpool(body.relu(body.bn1(body.conv1((images - network.mean) / network.std))))
    for index, layer in enumerate((body.layer1, body.layer2, body.layer3, body.layer4)):
        if index != stage:
            x = layer(x)
            continue
        x = layer[0](x)
        block = layer[1]
        out = block.conv2(block.relu(block.bn1(block.conv1(x))))
        out[:, channel] = 0.0
        x = block.relu(block.bn2(out) + x)
    return body.fc(torch.flatten(body.avgpool(x), 1))


def test_loss_rises_and_attention_match_their_procedure_by_hand():
    network = tiny_network().eval()
    layers = attended_layers(network.body, network.layout.stages)
    batches = tiny_batches(2)
    rises = loss_rises(network, layers, batches)
    with torch.no_grad():
        for stage, measured in enumerate(rises):
            by_hand = [statistics.fmean(
                F.cross_entropy(logits_with_conv2_channel_off(network, x, stage, c), y).item()
                - F.cross_entropy(network(x), y).item() for x, y in batches) for c in range(len(measured))]
            assert measured.tolist() == pytest.approx(by_hand, rel=1e-4, abs=1e-6)
            mean, spread = statistics.fmean(by_hand), statistics.pstdev(by_hand)  # np.std: population
            exponentials = [math.exp((r - mean) / spread / 5.0) for r in by_hand]
            expected = [e / sum(exponentials) for e in exponentials]
            assert attention_from_rises(measured).tolist() == pytest.approx(expected, rel=1e-4)
            assert len(set(measured.tolist())) > 1  # the channels do differ
    assert torch.equal(attention_from_rises(torch.full((4,), 0.3)), torch.full((4,), 0.25))


def test_probe_head_fit_is_their_sgd_by_hand():
    probe, by_hand = tiny_network(), tiny_network()
    for network in (probe, by_hand):  # a large head, so that weight decay's share of each step shows
        network.head.weight.data.mul_(100.0)
    batches = tiny_batches(3)
    backbone_before = {k: v.clone() for k, v in probe.backbone_parameters().items()}
    fit_probe_head(probe, batches, epochs=2)

    by_hand.train()  # train mode: BatchNorm's running statistics move with the target images
    head = by_hand.head
    momentum = [torch.zeros_like(p) for p in (head.weight, head.bias)]
    for epoch in range(2):
        lr = THEIR_LR * THEIR_GAMMA ** (epoch + 1)  # their ExponentialLR, stepped before each epoch
        for images, labels in batches:
            gradients = torch.autograd.grad(F.cross_entropy(by_hand(images), labels), [head.weight, head.bias])
            with torch.no_grad():
                for parameter, gradient, buffer in zip((head.weight, head.bias), gradients, momentum):
                    buffer.mul_(THEIR_MOMENTUM).add_(gradient + THEIR_WEIGHT_DECAY * parameter)
                    parameter.sub_(lr * buffer)
    assert torch.allclose(probe.head.weight, head.weight, rtol=0.0, atol=1e-5)
    assert torch.allclose(probe.head.bias, head.bias, rtol=0.0, atol=1e-5)
    for name, before in backbone_before.items():
        assert torch.equal(probe.backbone_parameters()[name], before)  # only the head trains
    bn = probe.body.layer1[0].bn1
    assert torch.allclose(bn.running_mean, by_hand.body.layer1[0].bn1.running_mean)
    assert not torch.equal(bn.running_mean, tiny_network().body.layer1[0].bn1.running_mean)


def test_penalty_is_their_sum_with_their_scale():
    generator = torch.Generator().manual_seed(0)
    student = [torch.randn(3, 4, 5, 5, generator=generator), torch.randn(3, 2, 2, 3, generator=generator)]
    teacher = [torch.randn(3, 4, 5, 5, generator=generator), torch.randn(3, 2, 2, 3, generator=generator)]
    attention = [torch.softmax(torch.randn(4, generator=generator), 0), torch.tensor([0.25, 0.75])]
    expected = 0.0
    for s, t, weights in zip(student, teacher, attention):
        batch, channels, height, width = s.shape
        for b in range(batch):
            for c in range(channels):
                squared_norm = sum(float(s[b, c, h, w] - t[b, c, h, w]) ** 2
                                   for h in range(height) for w in range(width))
                expected += 0.5 * channels * float(weights[c]) * squared_norm / (height * width)
    assert attention_weighted_distance(student, teacher, attention).item() == pytest.approx(expected, rel=1e-5)


def attended_outputs(network, layers, images: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of `layers` in one forward pass, read by the test's own hooks."""
    outputs = {}
    handles = [network.body.get_submodule(name).register_forward_hook(
        lambda module, inputs, output, name=name: outputs.__setitem__(name, output)) for name in layers]
    try:
        network(images)
    finally:
        for handle in handles:
            handle.remove()
    return [outputs[name] for name in layers]


def test_a_short_trial_distils_the_attended_convolutions_and_keeps_its_random_stream():
    config = resolve_config(tiny_config("delta_att"))
    run = prepare_run(config)
    regularizer = run.regularizer
    assert isinstance(regularizer, AttentiveFeatureDistillation)
    student_before = copy.deepcopy(run.student.state_dict())
    stream = torch.get_rng_state()
    attention = regularizer.measured_attention()
    assert torch.equal(torch.get_rng_state(), stream)  # the estimate draws from its own stream
    assert all(torch.equal(v, student_before[k]) for k, v in run.student.state_dict().items())
    assert [len(a) for a in attention] == [8, 16, 32, 64]
    assert all(a.sum().item() == pytest.approx(1.0) and len(set(a.tolist())) > 1 for a in attention)
    regularizer.attention = attention

    reports = list(run.reports())
    assert reports[-1]["iteration"] == config.iters
    assert all(math.isfinite(r["feature_loss"]) and r["feature_loss"] > 0 for r in reports)
    images, labels = zip(*(run.data.train[i] for i in range(config.batch_size)))
    images, labels = torch.stack(images), torch.tensor(labels)
    run.report()  # empties the running window
    student = copy.deepcopy(run.student).train()
    teacher = regularizer.teacher
    by_hand = attention_weighted_distance(attended_outputs(student, regularizer.layers, images),
                                          attended_outputs(teacher, regularizer.layers, images), attention)
    run.step(images, labels)
    assert run._window["penalty"] == pytest.approx(by_hand.item(), rel=1e-4)


def test_attention_is_measured_once_and_restored_from_a_checkpoint(monkeypatch):
    config = resolve_config(tiny_config("delta_att"))
    run = prepare_run(config)
    images, labels = zip(*(run.data.train[i] for i in range(config.batch_size)))
    run.step(torch.stack(images), torch.tensor(labels))
    state = run.state_dict()
    assert len(state["regularizer"]["attention"]) == len(run.student.layout.stages)

    resumed = prepare_run(config)
    monkeypatch.setattr(AttentiveFeatureDistillation, "measured_attention",
                        lambda self: pytest.fail("a resumed run must not measure the attention again"))
    resumed.load_state_dict(state)
    resumed.step(torch.stack(images), torch.tensor(labels))
    for loaded, measured in zip(resumed.regularizer.attention, run.regularizer.attention, strict=True):
        assert torch.equal(loaded, measured)


def test_alpha_is_deltas_own_and_the_schedule_is_deltas():
    assert method_defaults("delta_att", "novel_shapes")["lambda_feat"] == THEIR_ALPHA["default"]
    for dataset in ("dog", "bird", "flower", "indoor", "action"):
        values, delta = method_defaults("delta_att", dataset), method_defaults("delta", dataset)
        assert values["lambda_feat"] == THEIR_ALPHA.get(dataset, THEIR_ALPHA["default"])
        assert {k: v for k, v in values.items() if k != "lambda_feat"} == \
            {k: v for k, v in delta.items() if k != "lambda_feat"}


def test_one_spec_line_puts_it_in_the_spaces_the_configs_the_tables_and_the_figures(monkeypatch, tmp_path):
    spec = METHODS["delta_att"]
    assert "delta_att" in get_space("methods").parameters["method"]["grid"]
    assert resolve_config({"method": "delta_att"}).iters == spec.embedded["iters"]

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
