"""The paper's trade-off on the embedded default (`novel_shapes`), every method at its default settings, 3 seeds.

Slow (several minutes on 2 cores) but part of every CI run: it is the product's central claim. The figures are
issue-level targets: re-training loses accuracy on the small target set, Renofeation keeps fine-tuning's
accuracy, fine-tuning is vulnerable to the attack crafted on the source model and Renofeation is not, and the
linear probe is the most vulnerable of all. Numbers are on the test split; nothing is selected here.
"""
import statistics

import pytest
import ray
import torch
from ray import tune

from trainables.trainable import transfer_trainable
from tuner.attack_stage import run_attack_stage

METHODS = ("linear", "finetune", "retrain", "renofeation")
SEEDS = (0, 1, 2)
# Margins that hold for the source model as such, not for one build of it: two builds of the same recipe (other
# CPU kernels, other bits) gave, as mean test numbers, a clean gap Renofeation - fine-tuning of -2.2 and -3.3
# points and an ASR ratio fine-tuning / Renofeation of 4.0 and 2.5 (docs/embedded-defaults.md); Renofeation's
# ASR spans ~12 points over the three seeds. The paper's own ResNet-18 gaps are -1.4 to +6.3 points (Table 4).
CLEAN_GAP = 4
ASR_RATIO = 2


@pytest.mark.slow
def test_the_embedded_default_shows_the_papers_trade_off(tmp_path):
    torch.set_num_threads(2)
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            tune.with_resources(transfer_trainable, {"cpu": 1}),
            param_space={"method": tune.grid_search(list(METHODS)), "seed": tune.grid_search(list(SEEDS))},
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="methods", verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert results.num_errors == 0
    rows = run_attack_stage(tmp_path / "methods", "all")
    assert len(rows) == len(METHODS) * len(SEEDS)
    assert {row["dataset"] for row in rows} == {"novel_shapes"} and {row["attack_budget"] for row in rows} == {0.03}

    values = {}
    for method in METHODS:
        mine = [row for row in rows if row["method"] == method]
        assert sorted(row["seed"] for row in mine) == list(SEEDS)
        values[method] = {key: [row[key] for row in mine]
                          for key in ("val_clean_acc", "test_clean_acc", "test_asr", "test_noise_asr")}
    print("\nmethod        val clean %   test clean % mean (min-max)   test ASR % mean (min-max)   noise ASR %")
    for method, by_key in values.items():
        clean, asr = by_key["test_clean_acc"], by_key["test_asr"]
        print(f"{method:<12}  {statistics.mean(by_key['val_clean_acc']):6.2f}       "
              f"{statistics.mean(clean):6.2f} ({min(clean):.2f}-{max(clean):.2f})       "
              f"{statistics.mean(asr):6.2f} ({min(asr):.2f}-{max(asr):.2f})       "
              f"{statistics.mean(by_key['test_noise_asr']):.2f}")

    mean = {method: {key: statistics.mean(v) for key, v in by_key.items()} for method, by_key in values.items()}
    clean = {method: mean[method]["test_clean_acc"] for method in METHODS}
    asr = {method: mean[method]["test_asr"] for method in METHODS}
    assert clean["retrain"] <= clean["finetune"] - 8  # transfer matters on this target
    # Renofeation keeps fine-tuning's accuracy, with re-training's robustness rather than fine-tuning's exposure
    assert abs(clean["renofeation"] - clean["finetune"]) <= CLEAN_GAP
    assert asr["finetune"] >= 30 and asr["finetune"] >= ASR_RATIO * asr["renofeation"]
    assert abs(asr["renofeation"] - asr["retrain"]) < abs(asr["finetune"] - asr["renofeation"])
    assert asr["linear"] == max(asr.values())  # the frozen pretrained features are the most exposed
