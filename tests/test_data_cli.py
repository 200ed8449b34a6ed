"""`python -m tuner.data` as a user runs it, and its argument checks in-process.

Each subprocess pays seconds of torch import time, so the few of them start together in one fixture; those
tests are marked slow (13 s), the in-process checks stay in `make test-fast`.
"""
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.layouts import FakeLayout, make_bird, make_imagefolder, make_indoor
from tuner.cli import run_cli
from tuner.data import main

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CliRuns:
    bird: FakeLayout
    indoor: FakeLayout
    imagefolder: FakeLayout
    missing_image: Path
    missing_test_folder: Path
    runs: dict[str, CliRun]


def run_data_cli_in_parallel(argvs: dict[str, list[str]]) -> dict[str, CliRun]:
    processes = {
        key: subprocess.Popen([sys.executable, "-m", "tuner.data", *argv], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for key, argv in argvs.items()
    }
    runs = {}
    for key, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        runs[key] = CliRun(process.returncode, stdout, stderr)
    return runs


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CliRuns:
    bird = make_bird(tmp_path_factory.mktemp("bird"))
    indoor = make_indoor(tmp_path_factory.mktemp("indoor"))
    broken = make_indoor(tmp_path_factory.mktemp("broken"))
    missing_image = sorted(broken.known)[-1]
    missing_image.unlink()
    imagefolder = make_imagefolder(tmp_path_factory.mktemp("imagefolder"))
    no_test = make_imagefolder(tmp_path_factory.mktemp("no_test"))
    no_test.index_file.rename(no_test.root / "test_elsewhere")
    runs = run_data_cli_in_parallel({
        "bird": ["--dataset", "bird", "--data-root", str(bird.root)],
        "bird_no_val": ["--dataset", "bird", "--data-root", str(bird.root), "--val-fraction", "0"],
        "indoor_half": ["--dataset", "indoor", "--data-root", str(indoor.root), "--fraction", "0.5", "--seed", "1"],
        "broken": ["--dataset", "indoor", "--data-root", str(broken.root)],
        "unknown": ["--dataset", "cars"],
        "imagefolder": ["--dataset", "imagefolder", "--data-root", str(imagefolder.root), "--val-fraction", "0.25"],
        "imagefolder_no_test": ["--dataset", "imagefolder", "--data-root", str(no_test.root)],
    })
    return CliRuns(bird, indoor, imagefolder, missing_image, no_test.index_file, runs)


def one_error_line(run: CliRun) -> str:
    assert run.returncode != 0
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def held_out(counts: list[int], share: float) -> list[int]:
    """Validation images per class: a rounded share, at least one, never the whole class."""
    return [min(n - 1, max(1, round(share * n))) if n >= 2 else 0 for n in counts]


@pytest.mark.slow
def test_prints_the_counts_as_one_json_line(cli: CliRuns) -> None:
    run = cli.runs["bird"]
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1
    val = sum(held_out(cli.bird.train_per_class, 0.1))
    assert val == len(cli.bird.train_per_class)  # tiny classes: one validation image each
    assert json.loads(run.stdout) == {
        "dataset": "bird", "classes": 3, "train": cli.bird.train_count - val, "val": val,
        "test": cli.bird.test_count,
    }


@pytest.mark.slow
def test_no_validation_split_keeps_the_whole_train_split(cli: CliRuns) -> None:
    assert json.loads(cli.runs["bird_no_val"].stdout) == {
        "dataset": "bird", "classes": 3, "train": cli.bird.train_count, "val": 0, "test": cli.bird.test_count}


@pytest.mark.slow
def test_fraction_subsamples_each_class_of_the_train_split(cli: CliRuns) -> None:
    run = cli.runs["indoor_half"]
    assert run.returncode == 0, run.stderr
    val = held_out(cli.indoor.train_per_class, 0.1)
    kept = sum(max(1, round(0.5 * (count - held))) for count, held in zip(cli.indoor.train_per_class, val))
    assert kept < cli.indoor.train_count - sum(val)
    assert json.loads(run.stdout) == {"dataset": "indoor", "classes": 3, "train": kept, "val": sum(val),
                                      "test": cli.indoor.test_count}


@pytest.mark.slow
def test_a_broken_layout_names_the_missing_file(cli: CliRuns) -> None:
    assert str(cli.missing_image) in one_error_line(cli.runs["broken"])


@pytest.mark.slow
def test_an_image_folder_is_counted_like_a_paper_dataset(cli: CliRuns) -> None:
    run = cli.runs["imagefolder"]
    assert run.returncode == 0, run.stderr
    val = sum(held_out(cli.imagefolder.train_per_class, 0.25))
    assert json.loads(run.stdout) == {"dataset": "imagefolder", "classes": 3,
                                      "train": cli.imagefolder.train_count - val, "val": val,
                                      "test": cli.imagefolder.test_count}


@pytest.mark.slow
def test_an_image_folder_without_test_names_the_missing_folder(cli: CliRuns) -> None:
    assert f"missing folder {cli.missing_test_folder};" in one_error_line(cli.runs["imagefolder_no_test"])


@pytest.mark.slow
def test_an_unknown_dataset_is_named(cli: CliRuns) -> None:
    assert "'cars'" in one_error_line(cli.runs["unknown"])


def in_process_error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        run_cli(main, list(argv))
    assert exited.value.code == 2
    captured = capsys.readouterr()
    return one_error_line(CliRun(exited.value.code, captured.out, captured.err))


def test_a_paper_dataset_needs_a_data_root(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--data-root" in in_process_error_line(capsys, "--dataset", "dog")


def test_bad_fractions_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    make_bird(tmp_path)
    too_big = in_process_error_line(capsys, "--dataset", "bird", "--data-root", str(tmp_path), "--fraction", "1.5")
    assert "1.5" in too_big
    assert "--fraction" in in_process_error_line(capsys, "--dataset", "bird", "--fraction", "half")


def test_the_dataset_flag_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--dataset" in in_process_error_line(capsys)
