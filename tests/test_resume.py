"""A run resumed from a checkpoint continues exactly like one that was never stopped."""
import pytest
import torch

from tests.conftest import tiny_config
from trainables.checkpoint import (
    CHECKPOINT_FILE,
    is_finished_checkpoint,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from trainables.config import resolve_config
from trainables.robustness import load_evaluation_model
from trainables.trial import prepare_run


@pytest.mark.parametrize("method, stop_after_reports", [
    ("renofeation", 1),  # stopped in the main stage: dropout, teacher, SWA still ahead
    ("renofeation", 3),  # stopped inside the SWA stage, with snapshots averaged
    ("delta_adv", 1),  # PGD's random start draws from the checkpointed RNG
])
def test_resume_gives_the_same_next_metrics(method, stop_after_reports, tmp_path):
    config = resolve_config(tiny_config(method, iters=6, swa_iters=6, swa_every=2, eval_every=2))
    uninterrupted = list(prepare_run(config).reports())

    first = prepare_run(config)
    reports = first.reports()
    before = [next(reports) for _ in range(stop_after_reports)]
    save_checkpoint(first, tmp_path)
    del first, reports

    resumed = prepare_run(config)
    resumed.load_state_dict(load_checkpoint(tmp_path))
    after = list(resumed.reports())
    assert before + after == uninterrupted
    assert len(after) >= 1


def test_checkpoint_holds_the_evaluation_model_and_loads_weights_only(tmp_path):
    config = resolve_config(tiny_config("renofeation"))
    run = prepare_run(config)
    reports = run.reports()
    first = next(reports)
    (tmp_path / "mid").mkdir()
    save_checkpoint(run, tmp_path / "mid")
    state = load_checkpoint(tmp_path / "mid")  # torch.load(weights_only=True) inside
    assert state["iteration"] == first["iteration"] < config.total_iters
    assert state["config"]["method"] == "renofeation" and not is_finished_checkpoint(tmp_path / "mid")
    *_, final = reports
    save_checkpoint(run, tmp_path)
    # finished: nothing left to resume, so only the evaluation model (and the config) is kept
    assert is_finished_checkpoint(tmp_path) and not (tmp_path / CHECKPOINT_FILE).exists()
    assert load_model_state(tmp_path)["iteration"] == config.total_iters == final["iteration"]
    model = run.evaluation_model()
    assert model is run.averaged.module
    saved = load_model_state(tmp_path)["model"]
    assert saved.keys() == model.state_dict().keys()
    assert all((saved[k] == v).all() for k, v in model.state_dict().items())
    loaded, loaded_config = load_evaluation_model(tmp_path, torch.device("cpu"))
    assert loaded_config == config and not loaded.training
    assert all((loaded.state_dict()[k] == v).all() for k, v in model.state_dict().items())


def test_reporting_asr_does_not_change_what_the_trial_trains():
    """Trials of a sweep that reports ASR train exactly like trials that do not (and optuna-mo like grid)."""
    config = resolve_config(tiny_config("delta", iters=6, eval_every=2))
    plain = prepare_run(config)
    plain_reports = list(plain.reports())
    with_asr = prepare_run(config)
    validation_images = torch.stack([image for image, _ in with_asr.data.val])
    with_asr.adversarial_images = validation_images.flip(-1)  # any images of the split's size will do
    asr_reports = list(with_asr.reports())
    assert all("val_asr" in report for report in asr_reports)
    assert [{k: v for k, v in report.items() if k != "val_asr"} for report in asr_reports] == plain_reports
    assert all(torch.equal(plain.student.state_dict()[k], v) for k, v in with_asr.student.state_dict().items())


def test_a_report_carries_a_checkpoint_once_a_checkpoint_interval_has_passed():
    # An --iters budget scales eval_every and checkpoint_every and rounds each: 3 need not divide 4.
    config = resolve_config(tiny_config("delta", iters=12, eval_every=3, checkpoint_every=4))
    run = prepare_run(config)
    due = [report["iteration"] for report in run.reports() if run.checkpoint_due]
    assert due == [6, 9, 12]  # past 4, past 8, and the end (not only at 12, their first common multiple)
