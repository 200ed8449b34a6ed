"""House rules the code keeps: short functions and weights-only loads in every production module."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 40


def test_no_production_function_is_longer_than_40_lines():
    long = []
    for package in ("tuner", "trainables", "search_spaces", "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_every_torch_load_in_production_code_is_weights_only():
    loads = {}
    for package in ("tuner", "trainables", "search_spaces", "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                    safe = any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in node.keywords)
                    loads[f"{path.relative_to(REPO)}:{node.lineno}"] = safe
    assert loads and [where for where, safe in loads.items() if not safe] == []
