"""The final stage from the command line: attack the selected checkpoints of a (finished or running) sweep.

    python -m tuner.attack --run RUN_DIR [--top-k K] [--select clean|pareto|all] [--attack paper|code|embedded|digits]

The command line alone (a quick --help); the work is `tuner.attack_stage.run_attack_stage`.
"""
import argparse

from trainables.errors import UserError
from tuner.cli import OneLineErrorParser, add_attack_arguments, run_cli


def command_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m tuner.attack", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the sweep's run directory (storage path / name)")
    add_attack_arguments(parser)
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where to craft and score (default: cuda when available)")
    parser.add_argument("--num-cpus", type=int, help="torch threads (default: every CPU this process may use)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return command_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.top_k is not None and args.top_k <= 0:
        raise UserError(f"--top-k {args.top_k} must be > 0")
    from trainables.threads import use_threads
    from tuner.attack_stage import run_attack_stage
    from tuner.run_dir import ROBUSTNESS_TABLE, join, location

    use_threads(args.num_cpus)
    rows = run_attack_stage(args.run, args.select, args.top_k, args.attack, args.device, args.include_stopped,
                            budget=args.budget, step=args.step, iters=args.attack_iters)
    for row in sorted(rows, key=lambda r: r["test_asr"]):
        selection = (f"val clean {row['val_clean_acc']:6.2f}% ASR {row['val_asr']:6.2f}% | "
                     if row.get("val_clean_acc") is not None else "selected on test (val_fraction=0) | ")
        print(f"{row['method']:>12} {row['trial_id']}: {selection}test clean {row['test_clean_acc']:6.2f}% "
              f"ASR {row['test_asr']:6.2f}% (noise {row['test_noise_asr']:.2f}%, attack {row['attack_preset']} "
              f"B={row['attack_budget']:g} {row['attack_units']} = {row['attack_budget_pixels']:.4f} in pixels)")
    print(f"robustness table: {join(location(args.run), ROBUSTNESS_TABLE)}")


if __name__ == "__main__":
    run_cli(main)
