"""The report of one or more run directories: rows read, analysed, drawn and written (the command line is
`tuner.report`). `tuner.report_analysis` turns the rows into the analysis and one summary record;
`tuner.report_figures` and `tuner.report_html` draw the figures, `tuner.report_render` writes the record out as
markdown."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.errors import UserError
from tuner.cli import check_min_accuracy
from tuner.paper_comparison import PAPER_COMPARISON, paper_comparison, paper_comparison_markdown
from tuner.recipes import FIXED_PROTOCOL, get_recipe
from tuner.report_analysis import Analysis, analyse, json_safe, summary_record
from tuner.report_figures import draw_figures
from tuner.report_html import write_html
from tuner.report_render import summary_markdown
from tuner.run_dir import (
    REPORT_FOLDER,
    ROBUSTNESS_TABLE,
    SUMMARY_JSON,
    SUMMARY_MARKDOWN,
    SWEEP_RECORD,
    TRIALS_TABLE,
    discard,
    is_directory,
    is_uri,
    join,
    local_staging,
    location,
    publish_folder,
    read_json,
    read_rows,
    run_name,
    write_json,
)


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


def compared_rows(analysis: Analysis) -> list[dict]:
    """The rows set beside the published numbers: where a run refit its choices, each method's configuration chosen
    on validation at its refit models (the paper reports the tuned configuration, not every point of its grid);
    elsewhere every configuration (the authors' fixed settings)."""
    refit_runs = {row["run"] for row in analysis.refit_rows}
    chosen = [row for cells in analysis.table.values() for r in cells.values() if r.refit for row in r.rows]
    return chosen + [row for r in analysis.eligible if r.rows[0]["run"] not in refit_runs for row in r.rows]


def write_report(inputs: RunInputs, out: Path, recipe: str | None, include_stopped: bool,
                 min_accuracy: float | None = None) -> dict:
    """Figures, index.html, summary.json, summary.md (and paper_comparison.md for a recipe with published
    numbers) into the local folder `out`; returns the summary record."""
    fixed_runs = frozenset(name for name, record in inputs.sweeps.items()
                           if isinstance(record, dict) and record.get("protocol") == FIXED_PROTOCOL)
    analysis = analyse(inputs.rows, include_stopped, min_accuracy, fixed_runs)
    summary = summary_record(analysis, inputs.trials, inputs.sweeps, draw_figures(analysis, out),
                             write_html(analysis, out))
    tables = get_recipe(recipe).tables if recipe else ()
    if tables:
        summary["paper_comparison"] = json_safe(paper_comparison(compared_rows(analysis), tables))
        (out / PAPER_COMPARISON).write_text(paper_comparison_markdown(recipe, summary["paper_comparison"]))
    write_json(summary, str(out / SUMMARY_JSON))
    (out / SUMMARY_MARKDOWN).write_text(summary_markdown(summary))
    return summary


def build_report(run_dirs: list[str | Path], out: str | Path | None = None, recipe: str | None = None,
                 include_stopped: bool = False, min_accuracy: float | None = None) -> tuple[str, dict]:
    """Write the report of the runs' robustness rows into `out` (default: the first run's report/, on its own
    filesystem); returns where it went and the summary record. With a recipe (`recipe`, else the first
    sweep.json naming one) whose tables have published numbers, also paper_comparison.md. Configurations whose
    mean selection-split accuracy is below `min_accuracy` (%) are left out of the fronts and marked."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    check_min_accuracy(min_accuracy)
    run_dirs = [location(d) for d in run_dirs]
    inputs = load_inputs(run_dirs)
    recipe = recipe or next((s["recipe"] for s in inputs.sweeps.values() if isinstance(s, dict) and s.get("recipe")),
                            None)
    target = location(out) if out is not None else join(run_dirs[0], REPORT_FOLDER)
    staging = local_staging() if is_uri(target) else Path(target)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        summary = write_report(inputs, staging, recipe, include_stopped, min_accuracy)
        if is_uri(target):
            publish_folder(staging, target)
    finally:
        if is_uri(target):
            discard(staging)
    return target, summary
