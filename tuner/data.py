"""`python -m tuner.data`: check that a dataset loads and print its class and image counts as one JSON line."""
import argparse
import json

from trainables.config import TrialConfig
from trainables.data.registry import check_dataset_name, dataset_summary
from tuner.cli import OneLineErrorParser, run_cli


def _parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m tuner.data", description=__doc__)
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. digits, dog, bird, action, indoor, flower")
    parser.add_argument("--data-root", help="where the dataset's official archive was unpacked (paper datasets)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="keep this fraction of each class's training images, in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsampling")
    parser.add_argument("--val-fraction", type=float, default=TrialConfig.val_fraction,
                        help="share of each class's training images held out for validation (0: none)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    check_dataset_name(args.dataset)
    summary = dataset_summary(args.dataset, data_root=args.data_root, fraction=args.fraction, seed=args.seed,
                              val_fraction=args.val_fraction)
    print(json.dumps(summary))


if __name__ == "__main__":
    run_cli(main)
