"""The pretrained-model attack, the cached adversarial set, and the robustness metrics."""
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import trainables.adversarial_set as adversarial_module
import trainables.robustness as robustness
from tests.conftest import tiny_config
from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack import PenultimateAttack, box_in_pixels, clamp_to_box, feature_objective
from trainables.attack_presets import attack_config
from trainables.config import resolve_config
from trainables.evaluation import attack_counts
from trainables.models.network import build_network
from trainables.robustness import CheckpointGroup, feature_distance, group_split_metrics, split_metrics, weight_distance
from trainables.trial import prepare_run, pretrained_for

TINY_ATTACK = {"iters": 5}


def test_counts_on_hand_made_predictions():
    labels = torch.tensor([0, 1, 2, 3])
    counts = attack_counts(labels, clean_predicted=torch.tensor([0, 1, 2, 0]),
                           adversarial_predicted=torch.tensor([0, 2, 2, 1]))
    assert (counts.total, counts.clean_correct, counts.adversarial_correct, counts.fooled) == (4, 3, 2, 1)
    assert counts.clean_acc == 75.0 and counts.adv_acc == 50.0
    assert counts.asr == pytest.approx(100 / 3)


def test_asr_is_nan_when_nothing_is_classified_correctly():
    labels = torch.tensor([0, 1])
    counts = attack_counts(labels, torch.tensor([1, 0]), torch.tensor([0, 1]))
    assert counts.clean_correct == 0 and math.isnan(counts.asr)
    assert counts.clean_acc == 0.0 and counts.adv_acc == 100.0


@pytest.mark.parametrize("preset", ["embedded", "paper", "code"])
def test_attack_lowers_the_objective_within_budget_and_box(preset):
    torch.manual_seed(0)
    network = build_network("resnet18_w8", num_classes=20).eval()
    config = attack_config(preset, iters=10)
    images = torch.rand(8, 3, 32, 32)
    adversarial = PenultimateAttack(network, config).perturb(images)
    with torch.no_grad():
        before = feature_objective(network.penultimate(images), config)
        after = feature_objective(network.penultimate(adversarial), config)
    assert (after < before).all()
    box = box_in_pixels(config, network.mean, network.std)  # [0, 1] pixels; for `code` the authors' box
    assert torch.equal(clamp_to_box(adversarial, box), adversarial)
    # The box itself moves clean pixels that lie outside it (bright ones, `code`): that is not the budget's doing.
    delta = adversarial - clamp_to_box(images, box)
    if config.units == "normalized":
        delta = delta / network.std  # the budget is in normalised units, per channel
    assert delta.abs().max() <= config.budget + 1e-5
    assert delta.abs().max() > 0.5 * config.budget  # it used the budget


def count_crafting(monkeypatch) -> list[int]:
    calls = []
    real = adversarial_module.craft_shard

    def counted(context, index, directory):
        calls.append(index)
        return real(context, index, directory)

    monkeypatch.setattr(adversarial_module, "craft_shard", counted)
    return calls


def trained_run(method: str, **overrides):
    run = prepare_run(resolve_config(tiny_config(method, **overrides)))
    for _ in run.reports():
        pass
    return run


def test_set_is_crafted_once_and_reused_for_other_checkpoints(monkeypatch, tmp_path):
    calls = count_crafting(monkeypatch)
    spec = AdversarialSetSpec.from_trial(resolve_config(tiny_config("finetune", cache_dir=str(tmp_path))),
                                         attack_config("embedded", **TINY_ATTACK), "test")
    first = adversarial_set(spec)
    results = [split_metrics(trained_run(method).evaluation_model(), adversarial_set(spec), torch.device("cpu"))
               for method in ("finetune", "retrain")]
    assert calls == [0]  # 540 test images: one shard, crafted once for both checkpoints
    assert results[0] != results[1]
    for result in results:
        assert result["test_images"] == 540
        assert result["test_fooled"] <= result["test_clean_correct"]
        assert result["test_asr"] == pytest.approx(100 * result["test_fooled"] / result["test_clean_correct"])
        assert 0 <= result["test_noise_asr"] <= 100
    other_attack = AdversarialSetSpec.from_trial(spec.trial_config(), attack_config("embedded", iters=6), "test")
    assert adversarial_set(other_attack).key != first.key and calls == [0, 0]


def test_checkpoints_scored_together_score_as_one_at_a_time(monkeypatch, tmp_path):
    """The final stage loads each checkpoint into one module and, on a GPU, runs several per pass (vmap): the
    rows must be those of scoring each model on its own."""
    spec = AdversarialSetSpec.from_trial(resolve_config(tiny_config("finetune", cache_dir=str(tmp_path))),
                                         attack_config("embedded", **TINY_ATTACK), "test")
    crafted = adversarial_set(spec)
    models = [trained_run(method).evaluation_model() for method in ("finetune", "retrain", "renofeation")]
    alone = [split_metrics(model, crafted, torch.device("cpu")) for model in models]
    group = CheckpointGroup(spec.trial_config().arch, models[0].head.out_features, None, torch.device("cpu"))
    states = [model.state_dict() for model in models]
    for per_pass in (1, 2):  # one after another (the CPU default), then stacked two per pass (a GPU's way)
        monkeypatch.setattr(robustness, "CHECKPOINTS_PER_PASS", {"cpu": per_pass})
        assert group_split_metrics(group, states, crafted) == alone
    assert len({row["test_clean_correct"] for row in alone}) > 1  # three different models


def test_a_truncated_cache_file_is_rebuilt_not_used(monkeypatch, tmp_path):
    calls = count_crafting(monkeypatch)
    spec = AdversarialSetSpec.from_trial(resolve_config(tiny_config("finetune", cache_dir=str(tmp_path))),
                                         attack_config("embedded", **TINY_ATTACK), "val")
    first = adversarial_set(spec)
    assert first.split == "val" and first.manifest["count"] == len(prepare_run(spec.trial_config()).data.val)
    shard = first.directory / first.manifest["shards"][0]["file"]
    original = shard.read_bytes()
    shard.write_bytes(original[: len(original) // 2])
    rebuilt = adversarial_set(spec)
    assert len(calls) == 2
    assert shard.read_bytes() == original  # seeded random starts: the same set again
    assert rebuilt.key == first.key


def test_weight_and_feature_distance_are_zero_for_theta0_and_grow_with_training():
    config = resolve_config(tiny_config("finetune"))
    pretrained = build_network(config.arch, 10, pretrained_for(config)).eval()
    same = build_network(config.arch, 10, pretrained_for(config))
    run = trained_run("finetune")
    batches = [images for images, _ in DataLoader(run.data.train_plain, batch_size=256)]
    assert weight_distance(same, pretrained) == 0.0
    assert feature_distance(same, pretrained, batches) == 0.0
    assert weight_distance(run.student, pretrained) > 0.0
    cache = []
    first = feature_distance(run.student, pretrained, batches, cache)
    assert first > 0.0 and len(cache) == len(batches)
    assert feature_distance(run.student, pretrained, batches, cache) == pytest.approx(first)
    with torch.no_grad():  # the authors' scale: per-layer MSE summed over the distilled layers, not averaged
        images = torch.cat(batches)
        _, student, _ = run.student.eval().forward_features(images)
        _, teacher, _ = pretrained.forward_features(images)
    assert len(student) == 4
    assert first == pytest.approx(sum(F.mse_loss(s, t).item() for s, t in zip(student, teacher)), rel=1e-4)


@pytest.mark.slow
def test_shards_crafted_as_ray_tasks_equal_the_local_ones(tmp_path):
    import ray

    config = resolve_config(tiny_config("finetune"))
    local = AdversarialSetSpec.from_trial(replace(config, cache_dir=str(tmp_path / "local")),
                                          attack_config("embedded", **TINY_ATTACK), "test", shard_size=200)
    remote = replace(local, cache_dir=str(tmp_path / "ray"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        by_ray = adversarial_set(remote)  # Ray is running and there are 3 shards: crafted as Ray tasks
    finally:
        ray.shutdown()
    by_loop = adversarial_set(local, use_ray=False)
    assert [shard["count"] for shard in by_ray.manifest["shards"]] == [200, 200, 140]
    assert by_ray.key == by_loop.key
    assert torch.equal(by_ray.adversarial_images(), by_loop.adversarial_images())
