"""`--gpus-per-trial auto`: the packing model against the measured H200 profiles of benchmarks/README.md
("Trials per GPU", "Mixed precision on CUDA", 2026-11-26), its edge cases, and the flag's way through the sweep
and the dry run on a machine without a GPU (measurements faked where a GPU would measure)."""
import json
import subprocess
import sys

import pytest

from trainables.errors import UserError
from tuner import dry_run
from tuner.dry_run import StepCost, plan_summary, resolve_auto_gpus
from tuner.gpu_packing import (
    CANDIDATES,
    CONTEXT_BYTES,
    GIB,
    GOOD_ENOUGH,
    GpuProfile,
    busy_share,
    choose_trials_per_gpu,
    gpu_seconds_per_step,
    heaviest,
    predicted_speedup,
)
from tuner.settings import SweepSettings
from tuner.sweep import parse_settings
from tuner.sweep_plan import plans_for

H200 = 139 * GIB  # what torch reports for an H200 (143,771 MiB), rounded down


def h200(it_per_s: float, busy: float | None, peak_gib: float) -> GpuProfile:
    return GpuProfile(1 / it_per_s, busy, int(peak_gib * GIB), H200, "NVIDIA H200")


# benchmarks/README.md, H200, renofeation bf16, batch 64: one trial alone (it/s, nvidia-smi busy, torch's peak)
# and the measured total it/s of 1, 2, 4 (and 8) such trials on the GPU.
RESNET18_224 = h200(73.8, 0.69, 1.41)
RESNET18_224_MEASURED = {1: 73.8, 2: 94.4, 4: 94.9}
EMBEDDED_32 = h200(68.5, 0.15, 0.2)  # peak not recorded at 32 px: 0.9 GiB used on the card with the context
EMBEDDED_32_MEASURED = {1: 68.5, 2: 158.4, 4: 267.1, 8: 399.3}


@pytest.mark.parametrize("profile, measured, tolerance", [
    (RESNET18_224, RESNET18_224_MEASURED, 0.05),
    (EMBEDDED_32, EMBEDDED_32_MEASURED, 0.15),  # 2 per GPU measured 2.31x: each ran faster than alone
])
def test_the_model_predicts_the_measured_h200_packing(profile, measured, tolerance):
    for trials, total in measured.items():
        predicted = predicted_speedup(profile.busy, trials)
        assert predicted == pytest.approx(total / measured[1], rel=tolerance), trials


@pytest.mark.parametrize("profile, measured, chosen", [
    (RESNET18_224, RESNET18_224_MEASURED, 2),  # two fill the GPU; four add nothing
    (EMBEDDED_32, EMBEDDED_32_MEASURED, 8),  # eight still scale
])
def test_the_choice_is_within_10_percent_of_the_measured_best(profile, measured, chosen):
    choice = choose_trials_per_gpu(profile)
    assert choice.trials == chosen and choice.gpus_per_trial == 1 / chosen
    assert measured[choice.trials] >= 0.9 * max(measured.values())


def test_the_reason_is_one_line_in_the_issues_words():
    choice = choose_trials_per_gpu(GpuProfile(0.01, 0.31, int(2.1 * GIB) - CONTEXT_BYTES, H200, "NVIDIA H200"))
    assert choice.reason.startswith("4 trials per GPU — 31 % busy alone, 2.1 GiB each of 139 GiB on NVIDIA H200; ")
    assert "8 would add nothing (the GPU is full)" in choice.reason and "\n" not in choice.reason


def test_a_saturated_gpu_gets_one_trial():
    choice = choose_trials_per_gpu(h200(10, 1.0, 4))
    assert choice.trials == 1 and "2 would add nothing" in choice.reason


def test_tiny_trials_pack_eight_and_never_more():
    choice = choose_trials_per_gpu(h200(500, 0.01, 0.05))
    assert choice.trials == 8 == max(CANDIDATES) and choice.speedups[8] == 8


def test_memory_bounds_the_choice_with_headroom():
    # resnet50 delta_adv in fp32: 12.52 GiB each (benchmarks/README.md); 13.3 GiB with a context, x 1.25
    a10g = GpuProfile(0.2, 0.3, int(12.52 * GIB), 24 * GIB, "NVIDIA A10G")
    assert choose_trials_per_gpu(a10g).trials == 1
    h100 = GpuProfile(0.2, 0.1, int(12.52 * GIB), 80 * GIB, "NVIDIA H100")
    choice = choose_trials_per_gpu(h100)  # four fit (66 GiB), eight do not, though the GPU would take them
    assert choice.trials == 4 and set(choice.speedups) == {1, 2, 4} and "memory holds at most 4" in choice.reason


def test_a_trial_too_big_for_the_gpu_gets_a_whole_one_and_a_warning():
    choice = choose_trials_per_gpu(GpuProfile(0.2, 0.3, 30 * GIB, 24 * GIB, "NVIDIA A10G"))
    assert choice.trials == 1 and "may run out of memory even alone" in choice.reason


def test_cpus_and_max_concurrent_cap_the_choice():
    choice = choose_trials_per_gpu(EMBEDDED_32, max_trials=3)
    assert choice.trials == 2 and "at most 3 per GPU" in choice.reason


def test_unmeasured_utilisation_packs_nothing():
    choice = choose_trials_per_gpu(h200(70, None, 1))
    assert choice.trials == 1 and "could not be measured" in choice.reason


def test_the_smallest_good_enough_k_wins():
    # 45 % busy: 2 give 1.93x, 4 the same; 30 %: 2 give 2x, 4 give 2.9x (worth it)
    assert choose_trials_per_gpu(h200(50, 0.45, 1)).trials == 2
    assert choose_trials_per_gpu(h200(50, 0.30, 1)).trials == 4
    speedups = choose_trials_per_gpu(h200(50, 0.30, 1)).speedups
    assert speedups[4] >= GOOD_ENOUGH * max(speedups.values())


def test_busy_share_merges_overlapping_kernels():
    assert busy_share([(0.0, 0.2), (0.1, 0.3), (0.5, 0.6)], 1.0) == pytest.approx(0.4)
    assert busy_share([(0.0, 0.5), (0.1, 0.2)], 1.0) == pytest.approx(0.5)  # nested
    assert busy_share([(0.0, 2.0)], 1.0) == 1.0  # clipped
    assert busy_share([], 1.0) is None and busy_share([(0, 1)], 0) is None


def test_heaviest_profile_takes_the_worst_of_each():
    combined = heaviest([h200(70, 0.2, 1), h200(20, 0.6, 0.5), h200(90, 0.1, 3)])
    assert combined == GpuProfile(1 / 20, 0.6, 3 * GIB, H200, "NVIDIA H200")
    assert heaviest([h200(70, 0.2, 1), h200(20, None, 0.5)]).busy is None


def test_gpu_seconds_per_step_follow_the_model():
    assert gpu_seconds_per_step(RESNET18_224, 1) == RESNET18_224.step_s
    assert gpu_seconds_per_step(RESNET18_224, 2) == 2 * RESNET18_224.step_s
    # Four per GPU do not make a step four times cheaper: 1.26x throughput, as measured (1.29x)
    assert gpu_seconds_per_step(RESNET18_224, 0.25) == pytest.approx(RESNET18_224.step_s / 1.26, rel=0.01)
    assert gpu_seconds_per_step(RESNET18_224, 0.3) == gpu_seconds_per_step(RESNET18_224, 1 / 3)
    assert gpu_seconds_per_step(h200(70, None, 1), 0.25) == pytest.approx(1 / 70 / 4)


def test_the_decision_imports_no_torch():
    probe = "import sys, tuner.gpu_packing; print([m for m in ('torch', 'ray') if m in sys.modules])"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"


# --- the flag --------------------------------------------------------------------------------------------------------

QUICK = ["--space", "lambda_feat_quick", "--dataset", "digits"]


def test_sweep_takes_auto_and_numbers_and_names_anything_else(tmp_path):
    settings = parse_settings([*QUICK, "--gpus-per-trial", "auto"])
    assert settings.gpus_per_trial == "auto" and parse_settings(["--gpus-per-trial", "0.25"]).gpus_per_trial == 0.25
    with pytest.raises(UserError, match=r"argument --gpus-per-trial: 'some' is neither a number nor auto"):
        parse_settings(["--gpus-per-trial", "some"])
    with pytest.raises(UserError, match="--gpus-per-trial inf must be a finite number"):
        parse_settings(["--gpus-per-trial", "inf"])


def test_train_runs_one_trial_and_refuses_auto_in_one_line():
    from tuner import train
    with pytest.raises(UserError, match="auto chooses how many of a sweep's trials share a GPU") as error:
        train.parse_args(["--gpus-per-trial", "auto"])
    assert "\n" not in str(error.value) and train.parse_args(["--gpus-per-trial", "1"]).gpus_per_trial == 1


def test_the_api_passes_auto_through():
    from tuner.api import sweep_settings
    assert sweep_settings(space="lambda_feat_quick", gpus_per_trial="auto").gpus_per_trial == "auto"
    with pytest.raises(UserError, match="--gpus-per-trial"):
        sweep_settings(gpus_per_trial="half")


# --- resolution before Ray, and the dry run: measurements faked ------------------------------------------------------

def fake_measure(profile: GpuProfile | None):
    def measure_step(config, cpus, gpus):
        device = "cuda" if profile else "cpu"
        return StepCost(profile.step_s if profile else 0.05, device, 10**6, 10**5, profile)
    return measure_step


def quick_args(*flags: str) -> tuple[SweepSettings, list]:
    settings = parse_settings([*QUICK, "--iters", "10", "--num-cpus", "16", *flags])
    return settings, plans_for(settings)


def test_without_a_gpu_auto_is_one_error_line_before_anything_is_measured(monkeypatch):
    monkeypatch.setattr(dry_run, "measure_step", lambda *_: pytest.fail("measured without a GPU"))
    args, plans = quick_args("--gpus-per-trial", "auto")
    with pytest.raises(UserError, match=r"^--gpus-per-trial auto needs a GPU on this machine to measure a trial; "
                                        r"give a number$"):
        resolve_auto_gpus(args, plans)
    args, plans = quick_args("--gpus-per-trial", "auto", "--address", "10.0.0.1:6379")
    with pytest.raises(UserError, match="with --address it measures on this machine, not on the cluster's GPUs"):
        resolve_auto_gpus(args, plans)


def test_auto_resolves_to_the_chosen_fraction_and_sweep_json_keeps_it(monkeypatch, capsys, tmp_path):
    from tuner.run_dir import write_json
    from tuner.sweep_run import resumed_settings, sweep_record
    monkeypatch.setattr(dry_run.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dry_run, "measure_step", fake_measure(RESNET18_224))
    args, plans = quick_args("--gpus-per-trial", "auto")
    resolved = resolve_auto_gpus(args, plans)
    assert resolved.gpus_per_trial == 0.5 and args.gpus_per_trial == "auto"
    assert capsys.readouterr().out.startswith("auto: 2 trials per GPU — 69 % busy alone, 2.2 GiB each of 139 GiB")
    write_json(sweep_record(resolved, "lambda_feat_quick", str(tmp_path / "old")), str(tmp_path / "old" /
                                                                                      "sweep.json"))
    again = parse_settings(["--resume", "--name", "old", "--storage", str(tmp_path), "--gpus-per-trial", "auto"])
    assert resumed_settings(again, str(tmp_path / "old")).gpus_per_trial == 0.5  # --resume does not measure again


def test_the_dry_run_prints_the_recommendation(monkeypatch):
    monkeypatch.setattr(dry_run, "measure_step", fake_measure(EMBEDDED_32))
    summary = plan_summary(*quick_args("--gpus-per-trial", "auto"))
    assert "  auto: 8 trials per GPU — 15 % busy alone" in summary
    assert "GPU-hours at --gpus-per-trial 0.125" in summary
    summary = plan_summary(*quick_args("--gpus-per-trial", "1"))
    assert "  --gpus-per-trial auto would choose: 8 trials per GPU" in summary and "at --gpus-per-trial 1" in summary
    capped = plan_summary(*quick_args("--gpus-per-trial", "auto", "--max-concurrent", "2"))
    assert "auto: 2 trials per GPU" in capped


def test_the_dry_run_says_why_auto_cannot_choose_without_a_gpu(monkeypatch):
    monkeypatch.setattr(dry_run, "measure_step", fake_measure(None))
    summary = plan_summary(*quick_args("--gpus-per-trial", "auto"))
    assert "auto: no GPU on this machine to measure a trial" in summary
    assert "GPU-hours: not measured (no GPU on this machine)" in summary
    assert "auto" not in plan_summary(*quick_args("--gpus-per-trial", "0"))


@pytest.mark.skipif(dry_run.torch.cuda.is_available(), reason="this machine has a GPU: auto measures there")
def test_the_sweep_command_stops_in_one_line_and_touches_no_run_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tuner.sweep", *QUICK, "--gpus-per-trial", "auto", "--no-attack",
                             "--storage", str(tmp_path), "--name", "auto"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: --gpus-per-trial auto needs a GPU on this machine")
    assert not any(tmp_path.iterdir())


# --- benchmarks/gpu_ray_sweep.sh's figures, from a recorded-looking run ----------------------------------------------

def test_the_gpu_scripts_figures_from_ray_trial_results(tmp_path, capsys, monkeypatch):
    import pandas as pd

    from benchmarks.ray_sweep_figures import main, peak_concurrency, summary
    assert peak_concurrency([(0, 2), (1, 3), (2, 4), (2.5, 5)]) == 3  # an end before a start at the same instant
    for name, gpus, starts in (("embedded_1", 1.0, [0, 10, 20, 30]), ("embedded_0.25", 0.25, [0, 0, 0, 0])):
        (tmp_path / name).mkdir()
        pd.DataFrame({"started_at": [1e9 + s for s in starts], "ended_at": [1e9 + s + 10 for s in starts],
                      "status": "TERMINATED", "device": "cuda", "iteration": 300, "wall_s": 10.0,
                      "selection_split": "val", "val_acc": 50.0}).to_parquet(tmp_path / name / "trials.parquet")
        (tmp_path / name / "sweep.json").write_text(json.dumps({"settings": {"gpus_per_trial": gpus,
                                                                              "cpus_per_trial": 2}}))
        (tmp_path / f"{name}.log").write_text(f"trials done in {starts[-1] + 12} s: 4 trials, 0 failed\n")
    (tmp_path / "smi.csv").write_text("2001/09/09 01:46:45.000, 70, 2048\n")
    figures = tmp_path / "figures.jsonl"
    figures.write_text("\n".join(json.dumps(summary(tmp_path / name, tmp_path / f"{name}.log", tmp_path / "smi.csv"))
                                 for name in ("embedded_1", "embedded_0.25")))
    (tmp_path / "dry.log").write_text("  --gpus-per-trial auto would choose: 4 trials per GPU — 31 % busy alone\n"
                                      "  training steps: ~0.0030 GPU-hours at --gpus-per-trial 1\n")
    figures.write_text(figures.read_text() + f"\nDRYRUN embedded_1 {tmp_path / 'dry.log'}\n")
    monkeypatch.setattr(sys, "argv", ["ray_sweep_figures.py", "table", str(figures)])
    main()
    table = capsys.readouterr().out
    assert "embedded_0.25: 0.25 GPU/trial, peak 4 concurrent of 4" in table and "(4.00x vs 1 GPU/trial)" in table
    assert "~0.0030 GPU-hours of training steps vs 0.0117 measured" in table
    assert "embedded: auto chose 4 per GPU (100% of the measured best" in table
