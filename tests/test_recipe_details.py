"""Issue 21's recipe details, pinned to the authors' code (enyac-group/Renofeation): the feature distance as their
train.py measures it, the SWA stage's learning rate and fresh SGD, and the head's weight decay and penalty; the
embedded datasets keep the recipe their measured table was made with."""
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from tests.conftest import tiny_config
from trainables.adversarial_set import FEATURE_DISTANCE_SEED, AdversarialSet, SeededAugmentation
from trainables.checkpoint import load_checkpoint, save_checkpoint
from trainables.config import resolve_config
from trainables.data.tensors import TensorImageDataset
from trainables.methods import METHODS
from trainables.robustness import feature_distance
from trainables.trial import prepare_run

CPU = torch.device("cpu")


class TwoStages(nn.Module):
    """A network small enough to compute by hand: stage 1 = scale * x, stage 2 = dropout(stage 1) + shift."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift, self.dropout = scale, shift, nn.Dropout(0.9)

    def forward_features(self, images: torch.Tensor):
        first = images * self.scale
        second = self.dropout(first) + self.shift
        return None, [first, second], None


def test_feature_distance_by_hand_sums_the_stages_in_eval_mode():
    model, pretrained = TwoStages(scale=2.0, shift=1.0).train(), TwoStages(scale=1.0, shift=0.0).eval()
    batches = [torch.ones(2, 1, 1, 2), torch.full((1, 1, 1, 2), 2.0)]
    # Pixel value v: stage 1 differs by v, stage 2 by v + 1 (no dropout: eval mode), so the per-stage MSEs are
    # 1 and 4 on the first batch, 4 and 9 on the second; summed per image (not averaged over the 2 stages),
    # then averaged over the 3 images.
    assert feature_distance(model, pretrained, batches) == pytest.approx((2 * (1 + 4) + 1 * (4 + 9)) / 3)
    assert not model.training


def augmented_set(count: int = 6) -> TensorImageDataset:
    images = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    augment = v2.Compose([v2.RandomCrop(8, padding=2), v2.RandomHorizontalFlip()])
    return TensorImageDataset(images, torch.arange(count), augment)


def feature_images(train: TensorImageDataset) -> torch.Tensor:
    """What the final stage's feature distance reads: a fresh set's training batches (no memo shared)."""
    clean = TensorImageDataset(train.images, train.labels)  # the attacked split: test transform, no draw
    distance_set = AdversarialSet("key", Path("."), {}, "test", clean, train, None, "", None)
    return torch.cat(list(distance_set.training_batches(CPU)))


def test_feature_distance_reads_a_fixed_draw_of_the_augmented_training_images():
    train = augmented_set()
    rng = torch.get_rng_state()
    first = feature_images(train)
    assert torch.equal(torch.get_rng_state(), rng)  # training's checkpointed RNG is left alone
    assert torch.equal(feature_images(train), first)  # the same checkpoint gets the same number
    assert not torch.equal(first, train.images)  # the training augmentation, as the authors' train_loader
    by_one = torch.cat([x for x, _ in DataLoader(SeededAugmentation(train, FEATURE_DISTANCE_SEED), batch_size=1)])
    assert torch.equal(by_one, first)  # per-image seeds: independent of the batching
    other = torch.cat([x for x, _ in DataLoader(SeededAugmentation(train, FEATURE_DISTANCE_SEED + 1), batch_size=6)])
    assert not torch.equal(other, first)


PAPER = {"data_root": "/data"}


@pytest.mark.parametrize("method, dataset, swa_lr", [
    ("renofeation", "flower", 0.005),  # Renofeation.sh: the SWA run's --lr 5e-3, half the main run's 1e-2
    ("delta_r", "bird", 0.005),
    ("delta", "flower", 0.0025),  # DELTA.sh's lr 5e-3 for Flower, halved (the paper, Sec. 5.1)
    ("delta_adv", "action", 0.0025),
    ("delta", "dog", 0.005),
])
def test_swa_lr_is_half_the_lr_on_paper_datasets(method, dataset, swa_lr):
    config = resolve_config({"method": method, "dataset": dataset, "swa": True, **PAPER})
    assert config.swa_lr is None and config.swa_learning_rate == pytest.approx(swa_lr)


def test_a_set_swa_lr_wins_and_a_tuned_lr_is_halved():
    base = {"method": "renofeation", "dataset": "flower", "lr": 0.02, **PAPER}
    assert resolve_config(base).swa_learning_rate == pytest.approx(0.01)
    assert resolve_config({**base, "swa_lr": 0.003}).swa_learning_rate == 0.003


@pytest.mark.parametrize("method", sorted(METHODS))
def test_paper_datasets_follow_the_authors_head_and_swa_stage(method):
    config = resolve_config({"method": method, "dataset": "dog", **PAPER})
    assert config.head_beta == 0.01 and config.head_penalty_bias and config.head_weight_decay
    assert config.swa_fresh_optimizer


@pytest.mark.parametrize("dataset", ["digits", "novel_shapes"])
def test_embedded_datasets_keep_the_recipe_of_their_measured_table(dataset):
    config = resolve_config({"method": "renofeation", "dataset": dataset, "lr": 0.02})
    assert config.swa_learning_rate == 0.005
    assert not (config.swa_fresh_optimizer or config.head_penalty_bias or config.head_weight_decay)


@pytest.mark.parametrize("authors", [False, True])
def test_head_weight_decay_and_penalty_cover_what_the_switches_say(authors):
    config = resolve_config(tiny_config("finetune", weight_decay=1e-3, head_weight_decay=authors,
                                        head_penalty_bias=authors))
    run = prepare_run(config)
    head, bias = run.student.head.weight, run.student.head.bias
    head_group, backbone_group = run.optimizer.param_groups
    assert [id(p) for p in head_group["params"]] == [id(head), id(bias)]
    assert head_group["weight_decay"] == (1e-3 if authors else 0.0) and backbone_group["weight_decay"] == 1e-3
    squares = head.pow(2).sum() + (bias.pow(2).sum() if authors else 0.0)
    assert run.head_penalty().item() == pytest.approx(0.5 * 0.01 * squares.item())


def parameters_by_id(run) -> dict[int, torch.Tensor]:
    return {id(p): p.detach().clone() for p in run.student.parameters()}


@pytest.mark.parametrize("fresh", [False, True])
def test_the_swa_stage_starts_a_new_sgd_with_the_authors_settings(fresh):
    config = resolve_config(tiny_config("renofeation", lr=0.02, swa_lr=None, weight_decay=1e-3,
                                        swa_fresh_optimizer=fresh))
    run = prepare_run(config)
    images, labels = next(run._training_batches())
    for _ in range(config.iters):
        run.step(images, labels)
    main, before = run.optimizer, parameters_by_id(run)
    run.step(images, labels)  # the SWA stage's first step
    assert (run.optimizer is main) != fresh
    for group, main_group in zip(run.optimizer.param_groups, main.param_groups, strict=True):
        assert group["lr"] == pytest.approx(0.01)  # half of lr
        assert (group["momentum"], group["weight_decay"]) == (main_group["momentum"], main_group["weight_decay"])
    # A new SGD's first momentum buffer is that step's gradient (with weight decay): nothing carried over.
    group = run.optimizer.param_groups[1]
    buffers = [run.optimizer.state[p]["momentum_buffer"] for p in group["params"]]
    first_steps = [p.grad + group["weight_decay"] * before[id(p)] for p in group["params"]]
    assert all(torch.allclose(b, g, atol=1e-6) for b, g in zip(buffers, first_steps)) == fresh


@pytest.mark.parametrize("stop_after_reports", [3, 4])  # at the main stage's last iteration; inside SWA
def test_resume_with_a_fresh_swa_optimizer_continues_exactly(stop_after_reports, tmp_path):
    config = resolve_config(tiny_config("renofeation", iters=6, swa_iters=6, swa_every=2, eval_every=2,
                                        swa_fresh_optimizer=True))
    uninterrupted = list(prepare_run(config).reports())
    first = prepare_run(config)
    reports = first.reports()
    before = [next(reports) for _ in range(stop_after_reports)]
    save_checkpoint(first, tmp_path)
    resumed = prepare_run(config)
    resumed.load_state_dict(load_checkpoint(tmp_path))
    assert before + list(resumed.reports()) == uninterrupted
