"""`python -m tuner.report --run RUN_DIR [--run RUN_DIR2 ...] [--out DIR] [--min-accuracy PCT]`: figures and
tables of a sweep.

Reads RUN_DIR/robustness.parquet (one row per attacked checkpoint), and trials.parquet and sweep.json where
present — RUN_DIR a local folder or a URI (s3://...) — and writes pareto.png, tradeoff_<param>.png,
distance_vs_asr.png, index.html (the same figures, interactive and self-contained), summary.md and summary.json
into --out (default RUN_DIR/report of the first run). Works on a sweep still running: it reports the rows so far.
The command line alone (a quick --help); the work is `tuner.report_build.build_report`.
"""
import argparse

from tuner.cli import OneLineErrorParser, run_cli


def command_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m tuner.report", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True,
                        help="a sweep's run directory (holding robustness.parquet), a path or a URI; repeat to "
                             "combine runs")
    parser.add_argument("--out", help="where to write the report (default: RUN_DIR/report of the first run)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="count trials a scheduler stopped early as results (fronts, tables, statistics)")
    parser.add_argument("--min-accuracy", type=float, metavar="PCT",
                        help="leave configurations whose mean validation clean accuracy is below PCT %% out of the "
                             "Pareto fronts (they are still drawn, marked)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return command_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from tuner.report_build import build_report
    from tuner.report_html import INDEX_HTML
    from tuner.report_render import front_digest
    from tuner.run_dir import SUMMARY_MARKDOWN, join

    out, summary = build_report(args.run, args.out, include_stopped=args.include_stopped,
                                min_accuracy=args.min_accuracy)
    print("\n".join(front_digest(summary)))
    print(f"report: {join(out, SUMMARY_MARKDOWN)}")
    print(f"interactive report (opens offline in a browser): {join(out, INDEX_HTML)}")


if __name__ == "__main__":
    run_cli(main)
