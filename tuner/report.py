"""`python -m tuner.report --run RUN_DIR [--run RUN_DIR2 ...] [--out DIR]`: figures and tables of a sweep.

Reads RUN_DIR/robustness.parquet (one row per attacked checkpoint), and trials.parquet and sweep.json where
present — RUN_DIR a local folder or a URI (s3://...) — and writes pareto.png, tradeoff_<param>.png,
distance_vs_asr.png, summary.md and summary.json into --out (default RUN_DIR/report of the first run). Works on
a sweep still running: it reports the rows so far. `tuner.report_analysis` turns the rows into one summary
record; `tuner.report_render` writes it out.
"""
import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.errors import UserError
from tuner.cli import OneLineErrorParser, run_cli
from tuner.paper_comparison import PAPER_COMPARISON, paper_comparison, paper_comparison_markdown
from tuner.recipes import get_recipe
from tuner.report_analysis import analyse, json_safe, summary_record
from tuner.report_render import draw_figures, front_digest, summary_markdown
from tuner.run_dir import (REPORT_FOLDER, ROBUSTNESS_TABLE, SUMMARY_JSON, SUMMARY_MARKDOWN, SWEEP_RECORD, TRIALS_TABLE,
                           discard, is_directory, is_uri, join, local_staging, location, publish_folder, read_json,
                           read_rows, run_name, write_json)


@dataclass(frozen=True)
class RunInputs:
    rows: list[dict]  # robustness rows of every run, each with a `run` column
    trials: list[dict]
    sweeps: dict[str, Any]  # run name -> its sweep.json


def load_inputs(run_dirs: list[str]) -> RunInputs:
    rows, trials, sweeps = [], [], {}
    for run_dir in run_dirs:
        if not is_directory(run_dir):
            raise UserError(f"run directory {run_dir} does not exist")
        run_rows = read_rows(join(run_dir, ROBUSTNESS_TABLE))
        if not run_rows:
            raise UserError(f"{run_dir} has no evaluated checkpoints ({ROBUSTNESS_TABLE}); "
                            f"run python -m tuner.attack --run {run_dir} first")
        name = run_name(run_dir)
        rows += [{**row, "run": name} for row in run_rows]
        trials += [{**row, "run": name} for row in read_rows(join(run_dir, TRIALS_TABLE))]
        settings = read_json(join(run_dir, SWEEP_RECORD))
        if settings is not None:
            sweeps[name] = settings
    return RunInputs(rows, trials, sweeps)


def write_report(inputs: RunInputs, out: Path, recipe: str | None, include_stopped: bool) -> dict:
    """Figures, summary.json, summary.md (and paper_comparison.md for a recipe with published numbers) into the
    local folder `out`; returns the summary record."""
    analysis = analyse(inputs.rows, include_stopped)
    summary = summary_record(analysis, inputs.trials, inputs.sweeps, draw_figures(analysis, out))
    tables = get_recipe(recipe).tables if recipe else ()
    if tables:
        summary["paper_comparison"] = json_safe(paper_comparison([row for r in analysis.eligible for row in r.rows],
                                                                 tables))
        (out / PAPER_COMPARISON).write_text(paper_comparison_markdown(recipe, summary["paper_comparison"]))
    write_json(summary, str(out / SUMMARY_JSON))
    (out / SUMMARY_MARKDOWN).write_text(summary_markdown(summary))
    return summary


def build_report(run_dirs: list[str | Path], out: str | Path | None = None, recipe: str | None = None,
                 include_stopped: bool = False) -> tuple[str, dict]:
    """Write the report of the runs' robustness rows into `out` (default: the first run's report/, on its own
    filesystem); returns where it went and the summary record. With a recipe (`recipe`, else the first
    sweep.json naming one) whose tables have published numbers, also paper_comparison.md."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    run_dirs = [location(d) for d in run_dirs]
    inputs = load_inputs(run_dirs)
    recipe = recipe or next((s["recipe"] for s in inputs.sweeps.values() if isinstance(s, dict) and s.get("recipe")),
                            None)
    target = location(out) if out is not None else join(run_dirs[0], REPORT_FOLDER)
    staging = local_staging() if is_uri(target) else Path(target)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        summary = write_report(inputs, staging, recipe, include_stopped)
        if is_uri(target):
            publish_folder(staging, target)
    finally:
        if is_uri(target):
            discard(staging)
    return target, summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="python -m tuner.report", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True,
                        help="a sweep's run directory (holding robustness.parquet), a path or a URI; repeat to "
                             "combine runs")
    parser.add_argument("--out", help="where to write the report (default: RUN_DIR/report of the first run)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="count trials a scheduler stopped early as results (fronts, tables, statistics)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out, summary = build_report(args.run, args.out, include_stopped=args.include_stopped)
    print("\n".join(front_digest(summary)))
    print(f"report: {join(out, SUMMARY_MARKDOWN)}")


if __name__ == "__main__":
    run_cli(main)
