"""A sweep's settings are one typed record: the command line and the Python API build equal ones, --resume reads
them back from sweep.json, and nothing past the command line passes an argparse Namespace around."""
import ast
from dataclasses import replace
from pathlib import Path

import pytest

from trainables.errors import UserError
from tuner.api import sweep_settings
from tuner.run_dir import SWEEP_RECORD, join, write_json
from tuner.settings import SweepSettings
from tuner.sweep import parse_settings
from tuner.sweep_run import resumed_settings, sweep_record

REPO = Path(__file__).resolve().parents[1]
# The modules that parse a command line: the only ones that may hold an argparse Namespace.
COMMAND_LINE_MODULES = {"tuner/cli.py", "tuner/sweep.py", "tuner/train.py", "tuner/attack.py", "tuner/report.py",
                        "tuner/data.py"}


def test_the_command_line_and_the_api_build_equal_settings():
    assert parse_settings([]) == SweepSettings() == sweep_settings()
    flags = parse_settings(["--space", "paper_grid", "--method", "finetune", "--dataset", "digits", "--iters", "40",
                            "--set", "batch_size=32", "--search", "optuna", "--num-samples", "3",
                            "--gpus-per-trial", "0.25", "--refit", "--select", "pareto", "--seed", "7"])
    keywords = sweep_settings(space="paper_grid", method="finetune", dataset="digits", iters=40,
                              set={"batch_size": 32}, search="optuna", num_samples=3, gpus_per_trial=0.25,
                              refit=True, select="pareto", seed=7)
    assert flags == keywords and flags.set == ("batch_size=32",)


def test_a_resume_restores_the_recorded_settings(tmp_path):
    started = parse_settings(["--space", "lambda_feat_quick", "--dataset", "digits", "--iters", "12", "--name", "old",
                              "--storage", str(tmp_path), "--set", "fraction=0.1", "--scheduler", "asha"])
    write_json(sweep_record(started, "lambda_feat_quick", join(str(tmp_path), "old")),
               join(join(str(tmp_path), "old"), SWEEP_RECORD))
    now = parse_settings(["--resume", "--name", "old", "--storage", str(tmp_path), "--verbose"])
    assert resumed_settings(now, join(str(tmp_path), "old")) == replace(started, resume=True, verbose=True)


@pytest.mark.parametrize("keywords, message", [
    ({"lambda": 1}, r"^run_sweep\(\) got an unknown setting 'lambda'; allowed: address, arch, attack, "),
    ({"search": "gird"}, r"^--search 'gird' is not one of grid, random, optuna, optuna-mo$"),
    ({"num_samples": "3"}, r"^--num-samples '3': expected int$"),
    ({"refit": 1}, r"^--refit 1: expected bool$"),
    ({"resume": True}, r"^--resume needs --name: the sweep to continue$"),
])
def test_a_bad_api_setting_is_one_error_naming_what_is_allowed(keywords, message):
    with pytest.raises(UserError, match=message):
        sweep_settings(**keywords)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        SweepSettings().seed = 3  # type: ignore[misc]


def python_modules(*packages: str) -> dict[str, Path]:
    return {".".join(path.relative_to(REPO).with_suffix("").parts): path
            for package in packages for path in sorted((REPO / package).rglob("*.py"))}


def test_no_function_past_the_command_line_takes_a_namespace():
    takers = []
    for name, path in python_modules("tuner", "trainables").items():
        if str(path.relative_to(REPO)) in COMMAND_LINE_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    arg.annotation is not None and "Namespace" in ast.unparse(arg.annotation)
                    for arg in node.args.args + node.args.kwonlyargs):
                takers.append(f"{name}.{node.name}")
    assert takers == []


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports when it runs, at module level or inside a function (not the imports
    for type checkers alone, under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    for guard in [node for node in ast.walk(tree) if isinstance(node, ast.If)
                  and ast.unparse(node.test) == "TYPE_CHECKING"]:
        guard.body = []
    found = set()
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def test_the_project_has_no_import_cycle():
    modules = python_modules("tuner", "trainables", "search_spaces")
    graph = {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}
    assert graph["tuner.sweep"] and "tuner.sweep" not in graph["tuner.sweep_run"]
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(trail[trail.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, trail + [imported])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
