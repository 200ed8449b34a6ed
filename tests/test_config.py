"""Config resolution: layered defaults, coercion, and one-line errors for bad values."""
from dataclasses import asdict

import pytest

from trainables.config import resolve_config
from trainables.errors import UserError


def test_paper_defaults_and_per_dataset_values():
    delta_dog = resolve_config({"method": "delta", "dataset": "dog", "data_root": "/data"})
    assert (delta_dog.iters, delta_dog.lr, delta_dog.lambda_feat, delta_dog.arch) == (30_000, 0.01, 10.0, "resnet18")
    renofeation_bird = resolve_config({"method": "renofeation", "dataset": "bird", "data_root": "/data"})
    assert renofeation_bird.lambda_feat == 1.0
    assert (renofeation_bird.iters, renofeation_bird.weight_decay) == (90_000, 5e-3)
    assert (renofeation_bird.swa_iters, renofeation_bird.swa_learning_rate, renofeation_bird.swa_every) == \
        (30_000, 0.005, 500)
    assert renofeation_bird.dropout and renofeation_bird.dropout_p == 0.1
    assert resolve_config({"method": "l2sp", "dataset": "flower", "data_root": "/d"}).weight_decay == 0.0
    assert resolve_config({"method": "delta_adv", "dataset": "flower", "data_root": "/d"}).iters == 60_000


def test_ablation_switches_are_config_not_code():
    plain = resolve_config({"method": "delta_r"})
    ablated = resolve_config({"method": "delta_r", "dropout": "true", "swa": 1})
    assert not plain.dropout and not plain.swa
    assert ablated.dropout and ablated.swa and ablated.total_iters == ablated.iters + ablated.swa_iters
    assert not resolve_config({"method": "renofeation", "swa": False}).swa


def test_values_from_search_spaces_are_coerced():
    config = resolve_config({"method": "finetune", "iters": 100.0, "lr": "0.005", "seed": "3"})
    assert (config.iters, config.lr, config.seed) == (100, 0.005, 3)


@pytest.mark.parametrize("bad, named", [
    ({"method": "finetune", "learning_rate": 0.1}, "'learning_rate'"),
    ({"method": "warmstart"}, "'warmstart'"),
    ({"method": "finetune", "dataset": "cifar"}, "'cifar'"),
    ({"method": "finetune", "lr": -1}, "lr=-1"),
    ({"method": "finetune", "iters": 2.5}, "iters=2.5"),
    ({"method": "finetune", "fraction": 0}, "fraction=0"),
    ({"method": "finetune", "swa": "maybe"}, "swa='maybe'"),
    ({"method": "finetune", "arch": "vgg16"}, "'vgg16'"),
    ({"method": "finetune", "dataset": "bird"}, "data_root"),
])
def test_bad_values_are_one_line_errors_naming_them(bad, named):
    with pytest.raises(UserError) as raised:
        resolve_config(bad)
    assert named in str(raised.value) and "\n" not in str(raised.value)


def test_iteration_budget_scales_every_iteration_count():
    scaled = asdict(resolve_config({"method": "renofeation", "iteration_budget": 300}))
    full = resolve_config({"method": "renofeation"})
    factor = 300 / full.iters
    assert scaled["iters"] == 300
    assert scaled["swa_iters"] == round(full.swa_iters * factor)
    assert scaled["swa_every"] == max(1, round(full.swa_every * factor))
    assert scaled["eval_every"] == max(1, round(full.eval_every * factor))
    assert scaled["checkpoint_every"] == max(1, round(full.checkpoint_every * factor))
    assert "iteration_budget" not in scaled  # a directive of the commands, not something every trial stores
    with pytest.raises(UserError):
        resolve_config({"method": "renofeation", "iteration_budget": 0})
