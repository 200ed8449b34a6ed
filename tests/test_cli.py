"""The command lines: quick --help with no torch or Ray, choices and help on every flag, no abbreviations, one
error style, the same flag names across commands, --list-spaces / --show-space / --dry-run."""
import argparse
import json
import subprocess
import sys

import pytest

from search_spaces import SPACES
from trainables.config import resolve_config
from tuner import attack, data, report, sweep, train

LIGHT_COMMANDS = ("tuner.sweep", "tuner.train", "tuner.attack", "tuner.report", "tuner.data")
HEAVY_MODULES = ("torch", "torchvision", "ray", "optuna")


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", LIGHT_COMMANDS)
def test_help_imports_neither_torch_nor_ray(module):
    probe = (f"import runpy, sys\nsys.argv = ['{module}', '--help']\n"
             f"try:\n    runpy.run_module('{module}', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             f"print('LOADED', [m for m in {HEAVY_MODULES!r} if m in sys.modules], file=sys.stderr)")
    result = run("-c", probe)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stderr and "--help" in result.stdout
    if module == "tuner.sweep":  # defaults are shown, and only where there is one
        assert "search algorithm (default: grid)" in " ".join(result.stdout.split())
        assert "(default: None)" not in result.stdout


def every_action(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings and action.dest != "help"]


@pytest.mark.parametrize("command", [sweep, train, attack, report, data], ids=lambda module: module.__name__)
def test_every_flag_has_help(command):
    for action in every_action(command.command_parser()):
        assert action.help, f"{action.option_strings} has no help text"


def test_closed_sets_are_choices_and_shared_flags_are_spelled_alike():
    sweep_flags = {action.dest: action for action in every_action(sweep.command_parser())}
    for dest in ("search", "scheduler", "select", "attack", "method", "dataset", "recipe"):
        assert sweep_flags[dest].choices, f"--{dest} has no choices"
    shared_with_train = {"cpus_per_trial", "gpus_per_trial", "address", "dataset", "arch", "weights", "iters", "set"}
    assert shared_with_train <= set(vars(train.parse_args([]))) & set(sweep_flags)
    shared_with_attack = {"attack", "budget", "step", "attack_iters", "select", "top_k", "include_stopped"}
    assert shared_with_attack <= set(vars(attack.parse_args(["--run", "x"]))) & set(sweep_flags)


@pytest.mark.parametrize("flags, named", [
    (["--num-sample", "3"], "--num-sample"),  # an abbreviation of --num-samples: refused, not guessed
    (["--search", "gird"], "'gird'"),
    (["--scheduler", "hyperband"], "'hyperband'"),
    (["--method", "deltaa"], "'deltaa'"),
    (["--dataset", "cifar"], "'cifar'"),
    (["--select", "best"], "'best'"),
    (["--attack", "strong"], "'strong'"),
    (["--num-samples", "0"], "--num-samples 0"),
    (["--attack-iters", "-1"], "--attack-iters -1"),
    (["--resume"], "--resume needs --name"),
    (["--min-accuracy", "150"], "--min-accuracy 150"),
])
def test_bad_flags_are_one_error_line_and_exit_2(flags, named, tmp_path):
    result = run("-m", "tuner.sweep", "--storage", str(tmp_path), *flags)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0
    assert named in result.stderr
    assert not any(tmp_path.iterdir())


def test_list_and_show_spaces():
    listed = run("-m", "tuner.sweep", "--list-spaces")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(SPACES)
    shown = run("-m", "tuner.sweep", "--show-space", "lambda_feat")
    assert json.loads(shown.stdout)["parameters"] == SPACES["lambda_feat"].parameters
    missing = run("-m", "tuner.sweep", "--show-space", "lamda_feat")
    assert missing.returncode == 2 and "lamda_feat" in missing.stderr


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    result = run("-m", "tuner.sweep", "--space", "lambda_feat", "--iters", "10", "--storage", str(tmp_path),
                 "--name", "plan", "--dry-run")
    assert result.returncode == 0, result.stderr
    grid = SPACES["lambda_feat"].parameters
    totals = [resolve_config({"method": method, "lambda_feat": value, "iteration_budget": 10}).total_iters
              for method in grid["method"]["grid"] for value in grid["lambda_feat"]["grid"]]
    assert f"{len(totals)} trials" in result.stdout
    assert f"longest trial {max(totals)} iterations; {sum(totals)} training iterations" in result.stdout
    for method in grid["method"]["grid"]:
        assert f"{method}: " in result.stdout and "ms per step measured here" in result.stdout
    assert "CPU-hours" in result.stdout and "checkpoints:" in result.stdout
    assert not (tmp_path / "plan").exists()


def test_the_dry_run_times_a_training_split_smaller_than_its_timed_steps():
    from tests.conftest import tiny_config
    from trainables.config import resolve_config
    from trainables.trial import prepare_run
    from tuner.dry_run import TIMED_STEPS, measure_step

    config = resolve_config(tiny_config("finetune", fraction=0.02, batch_size=64))
    assert len(prepare_run(config).data.train) < (TIMED_STEPS + 1) * config.batch_size
    assert measure_step(config, cpus=1, gpus=0).seconds > 0
