"""renotune from Python: two small sweeps in one process, their tables as DataFrames, and the same run opened
with Ray Tune's own tools.

    python examples/api_sweep.py [--storage DIR] [--iters N]

Both sweeps run on the embedded default (novel_shapes, the shipped source model), so this needs no data and
no internet; --iters keeps it short (the methods' own schedules are a flag away: leave --iters out).
"""
import argparse
import tempfile

from ray import tune
from ray.tune import ExperimentAnalysis

from trainables.trainable import transfer_trainable
from tuner.api import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=tempfile.mkdtemp(prefix="renotune-example-"))
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    # A small lambda_feat sweep for DELTA, attacked and reported.
    delta = run_sweep(space="lambda_feat_quick", method="delta", iters=args.iters, storage=args.storage,
                      name="delta", set={"batch_size": 32})
    print(delta.trials[["trial_id", "method", "lambda_feat", "val_acc", "val_asr"]].to_string(index=False))
    print(delta.robustness[["trial_id", "val_clean_acc", "val_asr", "test_clean_acc", "test_asr"]]
          .to_string(index=False))
    print("report:", delta.report)

    # A second sweep in the same process (Ray is reused), without the final stage.
    renofeation = run_sweep(space="lambda_feat_quick", method="renofeation", iters=args.iters,
                            storage=args.storage, name="renofeation", no_attack=True, set={"batch_size": 32})
    print(renofeation.trials[["trial_id", "lambda_feat", "val_acc"]].to_string(index=False))

    # The run directory is a plain Ray Tune experiment: Ray's own tools open it.
    analysis = ExperimentAnalysis(delta.run_dirs[0])
    best = analysis.get_best_trial(metric="val_acc", mode="max", scope="last")
    print("best by validation accuracy (Ray's ExperimentAnalysis):", best.trial_id, best.config["lambda_feat"])
    restored = tune.Tuner.restore(delta.run_dirs[0], trainable=transfer_trainable)
    print("trials in the restored Tuner's ResultGrid:", len(restored.get_results()))


if __name__ == "__main__":
    main()
