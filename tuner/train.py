"""Run one trial of one transfer method through Ray Tune and print its final metrics.

    python -m tuner.train --method renofeation [--dataset digits] [--iters N] [--set key=value ...]

The same trial flags and resource flags as tuner.sweep; torch and Ray are imported only once there is work.
Ray's own output goes to RUN_DIR/ray.log as a sweep's does (--verbose keeps it on the console).
"""
import argparse
import time
from pathlib import Path

from trainables.methods import METHODS
from tuner.cli import OneLineErrorParser, add_resource_arguments, add_trial_arguments, parse_assignments, run_cli
from tuner.cluster_address import check_reachable


def command_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m tuner.train", description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="renofeation", choices=tuple(METHODS), metavar="METHOD",
                        help=f"transfer method: {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0, help="trial seed")
    add_trial_arguments(parser)
    add_resource_arguments(parser)
    parser.add_argument("--storage", default=str(Path("runs").resolve()), help="absolute path or URI for results")
    parser.add_argument("--name", help="run name (default: <method>-<dataset>-<time>)")
    parser.add_argument("--verbose", action="store_true", help="Ray's own output on the console too, not only "
                                                               "in RUN_DIR/ray.log")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return command_parser().parse_args(argv)


def trial_config(args: argparse.Namespace) -> dict:
    from trainables.config import resolve_config
    from trainables.methods import get_method
    from trainables.trial import pretrained_for
    from tuner.sweep_plan import check_datasets

    config = {"method": args.method, "dataset": args.dataset, "seed": args.seed}
    for key, value in (("data_root", args.data_root), ("arch", args.arch), ("weights", args.weights),
                       ("fraction", args.fraction)):
        if value is not None:
            config[key] = value
    if args.skip_unreadable_images:
        config["skip_unreadable_images"] = True
    config |= parse_assignments(args.set)
    if args.iters is not None:
        config["iteration_budget"] = args.iters
    resolved = resolve_config(config)  # fail here, in one line, before Ray starts
    check_datasets([resolved])  # the layout, and every image file decoding: in one line, not a failed trial
    if get_method(resolved.method).needs_pretrained:
        pretrained_for(resolved)  # find or pretrain the source model here, where its progress is visible
    return config


def run_trial(args: argparse.Namespace, config: dict):
    import ray
    from ray import tune

    from trainables.trainable import transfer_trainable
    from tuner.ray_output import ray_log_file, ray_output_to

    name = args.name or f"{args.method}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.address:
        check_reachable(args.address)
    ray_log = None if args.verbose else ray_log_file(args.storage, name)
    with ray_output_to(ray_log):
        if args.address:
            ray.init(address=args.address, configure_logging=False, log_to_driver=False)
        else:
            ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False)
        tuner = tune.Tuner(
            tune.with_resources(transfer_trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}),
            param_space=config,
            run_config=tune.RunConfig(name=name, storage_path=args.storage, verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
        return tuner.fit()[0]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from trainables.config import selection_metrics
    from trainables.methods import get_method
    from trainables.threads import use_threads

    use_threads(args.cpus_per_trial)  # this command's allotment, for the driver's own work too (the source)
    config = trial_config(args)
    started = time.time()
    result = run_trial(args, config)
    if result.error:
        raise SystemExit(f"trial failed: {result.error}")
    metrics = result.metrics
    accuracy, _ = selection_metrics(metrics["selection_split"])
    regularizer = get_method(args.method).regularizer_class
    penalty = f" ({regularizer.metric} {metrics[regularizer.metric]:.3f})" if regularizer else ""
    print(f"{args.method} on {args.dataset}: {accuracy} {metrics[accuracy]:.2f}% after "
          f"{metrics['iteration']} iterations in {time.time() - started:.0f} s{penalty}")
    print(f"checkpoint: {result.checkpoint.path}")


if __name__ == "__main__":
    run_cli(main)
