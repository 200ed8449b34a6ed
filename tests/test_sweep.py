"""`python -m tuner.sweep` end to end on tiny trials: spaces, searchers, ASHA, fractional GPUs, resume,
and a two-node Ray cluster."""
import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search.variant_generator import generate_variants

from search_spaces import SPACES, check_domain
from tests.test_report import report_at
from trainables.config import CONFIG_KEYS, resolve_config
from trainables.methods import METHODS
from tuner.attack_stage import candidates, run_attack_stage, select
from tuner.spaces import param_space
from tuner.sweep_plan import trial_configs
from tuner.sweep_run import scheduler, searcher

TINY = ["--dataset", "digits", "--set", "arch=resnet18_w8", "--set", "source_images=400", "--set", "source_iters=20",
        "--set", "fraction=0.1", "--set", "batch_size=16"]


def sweep(storage: Path, name: str, *flags: str, check: bool = True,
          base: list[str] = TINY) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tuner.sweep", "--storage", str(storage), "--name", name, *base, *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def trials(storage: Path, name: str) -> list[dict]:
    return pq.read_table(storage / name / "trials.parquet").to_pylist()


def test_paper_grid_expands_to_exactly_the_8_configurations():
    space = param_space(SPACES["paper_grid"], "grid", {"dataset": "digits"}, "finetune")
    variants = [config for _, config in generate_variants(space)]
    assert len(variants) == 8
    assert {(v["lr"], v["momentum"], v["weight_decay"]) for v in variants} == {
        (lr, momentum, wd) for lr in (0.01, 0.005) for momentum in (0.0, 0.9) for wd in (0.0, 1e-4)}
    assert all(v["method"] == "finetune" for v in variants)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_named_spaces_are_valid_and_resolve(name):
    space = SPACES[name]
    assert space.description and space.source and set(space.methods) <= set(METHODS)
    for parameter, domain in space.parameters.items():
        check_domain(parameter, domain)
        assert parameter in CONFIG_KEYS
    for config in trial_configs(param_space(space, "grid", {"dataset": "digits"}, None)):
        resolve_config(config)
    grid_points = math.prod(len(domain["grid"]) for domain in space.parameters.values())
    assert len(list(generate_variants(param_space(space, "grid", {}, None)))) == grid_points


def test_lambda_feat_space_covers_the_papers_range_log_spaced():
    grid = SPACES["lambda_feat"].parameters["lambda_feat"]["grid"]
    assert min(grid) <= 0.01 and max(grid) >= 10
    ratios = [b / a for a, b in zip(grid, grid[1:])]
    assert max(ratios) / min(ratios) < 1.3  # evenly spaced in log
    assert SPACES["lambda_feat"].parameters["lambda_feat"]["loguniform"] == [0.01, 10.0]


@pytest.mark.slow
def test_user_yaml_space_runs_and_bad_spaces_fail_in_one_line(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("methods: [finetune]\nparameters:\n  lr: {grid: [0.01, 0.02]}\nfixed: {momentum: 0.0}\n")
    sweep(tmp_path, "mine", "--space", str(good), "--iters", "4", "--no-attack")
    rows = trials(tmp_path, "mine")
    assert sorted(row["lr"] for row in rows) == [0.01, 0.02]
    assert all(row["momentum"] == 0.0 and row["method"] == "finetune" for row in rows)

    cases = {
        "paramters:\n  lr: {grid: [0.1]}\n": "'paramters'",
        "methods: [finetune]\nparameters:\n  learning_rate: {grid: [0.1]}\n": "'learning_rate'",
        "methods: [finetune]\nparameters:\n  lr: {gird: [0.1]}\n": "'gird'",
        "methods: [finetune]\nparameters:\n  lr: {loguniform: [0.1, 0.01]}\n": "low < high",
        "methods: [finetune]\nparameters:\n  lr: [0.1\n": "not valid YAML",
    }
    for index, (text, named) in enumerate(cases.items()):
        bad = tmp_path / f"bad{index}.yaml"
        bad.write_text(text)
        result = sweep(tmp_path, f"bad{index}", "--space", str(bad), check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0 and named in result.stderr
    assert not (tmp_path / "bad0").exists()  # nothing half-written


@pytest.mark.slow
def test_optuna_multi_objective_reports_asr_and_its_pareto_set_is_non_dominated(tmp_path):
    sweep(tmp_path, "mo", "--space", "lambda_feat", "--method", "delta", "--search", "optuna-mo",
          "--num-samples", "4", "--iters", "6", "--select", "pareto")
    rows = trials(tmp_path, "mo")
    assert len(rows) == 4 and all(row["val_asr"] is not None for row in rows)
    assert len({row["lambda_feat"] for row in rows}) == 4  # sampled from the log-uniform domain
    front = pq.read_table(tmp_path / "mo" / "robustness.parquet").to_pylist()
    assert front
    points = [(row["val_acc"], row["val_asr"]) for row in rows if not math.isnan(row["val_asr"])]
    reported = {row["trial_id"]: (row["val_acc"], row["val_asr"]) for row in rows}
    for row in front:
        clean, asr = reported[row["trial_id"]]
        assert not any(c >= clean and a <= asr and (c > clean or a < asr) for c, a in points)
        assert (row["val_clean_acc"], row["val_asr"]) == pytest.approx((clean, asr), nan_ok=True)
    assert (tmp_path / "mo" / "report" / "pareto.png").is_file()


@pytest.mark.slow
def test_optuna_mo_gives_each_backbone_its_own_adversarial_set(tmp_path):
    space = tmp_path / "two_backbones.yaml"
    space.write_text("methods: [delta]\nparameters:\n  arch: {choice: [resnet18_w8, resnet18_w4]}\n"
                     "  lambda_feat: {loguniform: [0.01, 10]}\n")
    # no --set arch: an explicit value pins a parameter the space samples
    arch_at = TINY.index("arch=resnet18_w8")
    without_arch = TINY[:arch_at - 1] + TINY[arch_at + 1:]
    sweep(tmp_path, "archs", "--space", str(space), "--search", "optuna-mo", "--num-samples", "4", "--iters", "6",
          "--select", "all", base=without_arch)
    reported = {row["trial_id"]: row for row in trials(tmp_path, "archs")}
    assert {row["arch"] for row in reported.values()} == {"resnet18_w8", "resnet18_w4"}
    scored = pq.read_table(tmp_path / "archs" / "robustness.parquet").to_pylist()
    assert len(scored) == 4 and len({row["val_attack_key"] for row in scored}) == 2  # one set per backbone
    for row in scored:  # the ASR a trial saw is the final stage's for the same checkpoint and split, exactly
        assert reported[row["trial_id"]]["val_asr"] == row["val_asr"]
        assert reported[row["trial_id"]]["val_acc"] == row["val_clean_acc"]


@pytest.mark.slow
def test_optuna_mo_refuses_a_pretrained_model_sampled_from_a_range(tmp_path):
    space = tmp_path / "ranged.yaml"
    space.write_text("methods: [delta]\nparameters:\n  source_images: {randint: [300, 500]}\n")
    # no --set source_images: an explicit value would pin it (tested below)
    at = TINY.index("source_images=400")
    without_source_images = TINY[:at - 1] + TINY[at + 1:]
    result = sweep(tmp_path, "ranged", "--space", str(space), "--search", "optuna-mo", check=False,
                   base=without_source_images)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "source_images" in result.stderr and not (tmp_path / "ranged").exists()


def test_optuna_on_a_space_the_user_pinned_whole_is_one_line(tmp_path):
    space = tmp_path / "pinned.yaml"
    space.write_text("methods: [delta]\nparameters:\n  source_images: {randint: [300, 500]}\n")
    result = sweep(tmp_path, "pinned", "--space", str(space), "--search", "optuna", "--dry-run", check=False)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "nothing to sample" in result.stderr and not (tmp_path / "pinned").exists()


def test_asha_compares_trials_on_validation_accuracy():
    asha = scheduler("asha", longest=27, eval_every=3, split="val")
    results = {"a": (90.0, 10.0), "b": (80.0, 20.0), "c": (10.0, 99.0), "d": (95.0, 0.0)}  # (val, test) accuracy
    decisions = {}
    for trial_id, (val, test) in results.items():
        trial = SimpleNamespace(trial_id=trial_id)
        asha.on_trial_add(None, trial)
        decisions[trial_id] = asha.on_trial_result(None, trial, {"iteration": 3, "val_acc": val, "test_acc": test})
    assert decisions["c"] == TrialScheduler.STOP  # worst on validation, best on test
    assert decisions["d"] == TrialScheduler.CONTINUE  # best on validation, worst on test


def test_optuna_learns_from_validation_accuracy():
    search = searcher("optuna", seed=0, split="val")
    search.set_search_properties(None, None, {"lambda_feat": tune.loguniform(0.01, 10.0)})
    suggested = {trial_id: search.suggest(trial_id) for trial_id in ("a", "b")}
    search.on_trial_complete("a", {"val_acc": 90.0, "test_acc": 10.0, "iteration": 6, "total_iters": 6})
    search.on_trial_complete("b", {"val_acc": 50.0, "test_acc": 99.0, "iteration": 6, "total_iters": 6})
    best = search._ot_study.best_trial
    assert best.value == 90.0 and best.params["lambda_feat"] == suggested["a"]["lambda_feat"]


@pytest.mark.slow
def test_asha_stops_trials_early_and_they_are_marked_not_method_results(tmp_path):
    # --iters 27 scales the intervals by 27/600: a checkpoint every 3 iterations, so stopped trials have one too
    sweep(tmp_path, "asha", "--space", "lambda_feat", "--method", "delta", "--scheduler", "asha",
          "--iters", "27", "--set", "eval_every=3", "--set", "checkpoint_every=67", "--no-attack")
    rows = trials(tmp_path, "asha")
    assert len(rows) == 7
    stopped = {row["trial_id"] for row in rows if row["stopped_early"]}
    assert stopped and any(row["iteration"] == 27 for row in rows)

    scored = run_attack_stage(tmp_path / "asha", "all", preset="embedded", iters=2)
    assert {row["trial_id"] for row in scored if row["stopped_early"]} == stopped
    assert {c.trial_id for c in select(candidates(tmp_path / "asha"), "clean", None)}.isdisjoint(stopped)
    summary = json.loads((report_at([tmp_path / "asha"]) / "summary.json").read_text())
    on_front = {trial.split("/")[1] for entry in summary["pareto"]["digits"] for trial in entry["trials"]}
    assert on_front and on_front.isdisjoint(stopped)


def max_overlap(rows: list[dict]) -> int:
    events = sorted([(row["started_at"], 1) for row in rows] + [(row["ended_at"], -1) for row in rows])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.slow
def test_quarter_gpus_pack_four_trials_onto_one_gpu(tmp_path):
    sweep(tmp_path, "gpus", "--space", "lambda_feat", "--method", "delta", "--iters", "40",
          "--num-cpus", "4", "--num-gpus", "1", "--cpus-per-trial", "1", "--gpus-per-trial", "0.25", "--no-attack")
    rows = trials(tmp_path, "gpus")
    assert len(rows) == 7 and all(row["gpu_ids"] == "0" for row in rows)  # each saw its share of GPU 0
    assert max_overlap(rows) == 4


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_losing_or_rerunning_trials(tmp_path):
    command = [sys.executable, "-m", "tuner.sweep", "--storage", str(tmp_path), "--name", "resume", *TINY,
               "--space", "lambda_feat", "--method", "delta", "--iters", "200", "--max-concurrent", "1",
               "--no-attack"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished_lines = []
    for line in process.stdout:
        if " finished" in line:
            finished_lines.append(line)
        if len(finished_lines) == 2:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(finished_lines) + rest[-3000:]
    run_dir = tmp_path / "resume"
    results_before = {path.parent.name: path.read_text() for path in run_dir.glob("*/result.json")}
    finished_before = {name: text for name, text in results_before.items()
                       if json.loads(text.splitlines()[-1])["iteration"] == 200}
    assert 2 <= len(finished_before) < 7

    result = subprocess.run([sys.executable, "-m", "tuner.sweep", "--storage", str(tmp_path), "--name", "resume",
                             "--resume"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = trials(tmp_path, "resume")
    assert len(rows) == 7 and len({row["trial_id"] for row in rows}) == 7
    assert sorted(row["lambda_feat"] for row in rows) == sorted(SPACES["lambda_feat"].parameters["lambda_feat"]["grid"])
    assert all(row["status"] == "TERMINATED" and row["iteration"] == 200 for row in rows)
    for name, text in finished_before.items():
        assert (run_dir / name / "result.json").read_text() == text  # finished trials were not run again


@pytest.mark.slow
def test_address_runs_trials_on_both_nodes_of_a_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        sweep(tmp_path, "cluster", "--address", cluster.address, "--space", "lambda_feat", "--method", "delta",
              "--iters", "40", "--cpus-per-trial", "1", "--no-attack")
    finally:
        cluster.shutdown()
    rows = trials(tmp_path, "cluster")
    assert len(rows) == 7
    assert len({row["node_id"] for row in rows}) == 2
