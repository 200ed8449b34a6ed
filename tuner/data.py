"""`python -m tuner.data`: check that a dataset loads and print its class and image counts as one JSON line."""
import json

from trainables.data.specs import DEFAULT_VAL_FRACTION, dataset_names
from tuner.cli import OneLineErrorParser, run_cli


def command_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m tuner.data", description=__doc__)
    parser.add_argument("--dataset", required=True, choices=dataset_names(), metavar="DATASET",
                        help=f"dataset name: {', '.join(dataset_names())}")
    parser.add_argument("--data-root", help="where the dataset's official archive was unpacked (paper datasets), or "
                                            "the folder holding train/<class>/ and test/<class>/ (imagefolder)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="keep this fraction of each class's training images, in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsampling")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help="share of each class's training images held out for validation (0: none)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = command_parser().parse_args(argv)
    from trainables.data.registry import dataset_summary  # torchvision: only once there is work

    summary = dataset_summary(args.dataset, data_root=args.data_root, fraction=args.fraction, seed=args.seed,
                              val_fraction=args.val_fraction)
    print(json.dumps(summary))


if __name__ == "__main__":
    run_cli(main)
