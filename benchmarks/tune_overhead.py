"""A trial under Ray Tune vs the same training loop run directly: does `Tuner.fit()` cost the trial speed?
Target (P1): the trial's loop under Tune runs at >= 0.95x the direct loop's speed.

    .venv/bin/python benchmarks/tune_overhead.py [--method delta] [--dataset novel_shapes] [--iters 300]
        [--threads 1] [--repeats 2]

One trial config (default: DELTA on the embedded default `novel_shapes`, `--iters` main-stage iterations, the
embedded profile's eval_every 100 and checkpoint_every 500, batch 64, num_workers 0), the same torch threads in
both (`--threads`: the direct loop's process, and the trial's CPUs under Tune, which the trainable turns into its
threads), and the selection-split ASR reported at every evaluation as a sweep does it: the validation split's
adversarial set (the dataset's default attack preset) is crafted once beforehand and handed to the loop — under
Tune through `tune.with_parameters(transfer_trainable, adversarial_sets=..., min_checkpoint_interval_s=60)`, as
`tuner/sweep_run.py` does, Ray started and stopped around each Tune repeat.

(a) direct: `prepare_run` (not timed), then the trainable's own loop: iterate `run.reports()` (every step, and at
    each evaluation the selection split's accuracy and ASR), saving a checkpoint when it is due (the same pacing
    rule), into a temporary folder.
(b) Tune: `tune.Tuner(tune.with_parameters(...), ...)`, 1 trial, 1 CPU per thread. The project's trainable
    unchanged, called from a thin wrapper that notes (in a file) when the trial's `run.reports()` starts
    yielding work and when `transfer_trainable` returns.

Counted in both: from the start of the loop's first iteration to the end of the loop: every training step, every
evaluation with its ASR, the checkpoint writes, and under Tune also every `tune.report` with its checkpoint
persisted to the run's storage. Not counted: Ray's start-up, the trial's process and actor start, `prepare_run`
(data, pretrained weights, model) and fetching the adversarial set from the object store. Printed for
information: Tune's own `time_total_s` (from the trainable's start: `prepare_run` included) and the wall time of
the Tune repeat from `ray.init` to `ray.shutdown`. Repeats alternate direct, Tune, direct, Tune, ...; medians.
The two runs train identically (num_workers 0, same seed): their final validation accuracy must agree.
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack_presets import attack_config
from trainables.checkpoint import save_checkpoint
from trainables.config import resolve_config, selection_metrics
from trainables.threads import use_threads
from trainables.train import TransferRun
from trainables.trainable import transfer_trainable
from trainables.trial import prepare_run, pretrained_for
from tuner.attack_stage import default_attack_preset
from tuner.cli import parse_assignments
from tuner.ray_output import ray_output_to
from tuner.sweep_run import MIN_CHECKPOINT_INTERVAL_S

TARGET = 0.95


def direct_loop(config: dict, adversarial_images: torch.Tensor, threads: int) -> dict:
    """The trainable's loop without Ray: seconds of the loop and the final metrics."""
    use_threads(threads)
    resolved = resolve_config(config)
    started = time.perf_counter()
    run = prepare_run(resolved, torch.device("cpu"))
    run.adversarial_images = adversarial_images
    prepared = time.perf_counter()
    last_checkpoint_at = time.time()
    metrics = {}
    loop_started, cpu_started = time.perf_counter(), time.process_time()
    for metrics in run.reports():  # the same steps, evaluations and checkpoint rule as transfer_trainable
        metrics |= {"reported_at": time.time()}
        recent = time.time() - last_checkpoint_at < MIN_CHECKPOINT_INTERVAL_S
        if not run.checkpoint_due or (recent and not run.finished):
            continue
        with tempfile.TemporaryDirectory() as directory:
            save_checkpoint(run, Path(directory))
        last_checkpoint_at = time.time()
    return {"loop_s": time.perf_counter() - loop_started, "loop_cpu_s": time.process_time() - cpu_started,
            "prepare_s": prepared - started, "metrics": metrics}


def timed_trainable(config: dict, adversarial_sets: dict | None = None, min_checkpoint_interval_s: float = 0.0,
                    marks_file: str = "") -> None:
    """transfer_trainable itself; writes when its `run.reports()` starts and when it returns (epoch seconds)."""
    original = TransferRun.reports
    marks = {}

    def reports(self, *args, **kwargs):
        marks["loop_started"], marks["cpu_started"] = time.time(), time.process_time()  # at the first next()
        yield from original(self, *args, **kwargs)

    TransferRun.reports = reports
    try:
        transfer_trainable(config, adversarial_sets=adversarial_sets,
                           min_checkpoint_interval_s=min_checkpoint_interval_s)
    finally:
        TransferRun.reports = original
    marks["returned"], marks["cpu_returned"] = time.time(), time.process_time()
    Path(marks_file).write_text(json.dumps(marks))


def tune_loop(config: dict, adversarial_images: torch.Tensor, spec: AdversarialSetSpec, threads: int,
              scratch: Path, name: str) -> dict:
    marks_file = scratch / f"{name}.marks.json"
    started = time.perf_counter()
    with ray_output_to(scratch / "ray.log"):
        ray.init(num_cpus=threads, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            trainable = tune.with_parameters(timed_trainable, adversarial_sets={spec: ray.put(adversarial_images)},
                                             min_checkpoint_interval_s=MIN_CHECKPOINT_INTERVAL_S,
                                             marks_file=str(marks_file))
            results = tune.Tuner(
                tune.with_resources(trainable, {"cpu": threads}), param_space=config,
                run_config=tune.RunConfig(name=name, storage_path=str(scratch / "runs"), verbose=0,
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
            ).fit()
        finally:
            ray.shutdown()
    wall = time.perf_counter() - started
    if results.num_errors:
        raise SystemExit(f"the trial failed: {results.errors[0]}")
    marks = json.loads(marks_file.read_text())
    metrics = results[0].metrics
    return {"loop_s": marks["returned"] - marks["loop_started"],
            "loop_cpu_s": marks["cpu_returned"] - marks["cpu_started"], "time_total_s": metrics["time_total_s"],
            "wall_s": wall, "metrics": metrics}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="delta")
    parser.add_argument("--dataset", default="novel_shapes")
    parser.add_argument("--iters", type=int, default=300, help="main-stage iterations (eval_every etc. unchanged)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads = the trial's CPUs (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating (median)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another config value (cast like the command line's --set), repeatable")
    return parser.parse_args()


def selection_set(resolved) -> tuple[AdversarialSetSpec, torch.Tensor]:
    """The selection split's adversarial set a sweep hands this trial (crafted here once, then cached)."""
    pretrained_for(resolved)  # the source model found or pretrained before anything is timed
    spec = AdversarialSetSpec.from_trial(resolved, attack_config(default_attack_preset(resolved.dataset)),
                                         resolved.selection_split)
    started = time.perf_counter()
    images = adversarial_set(spec).adversarial_images()
    print(f"{spec.split} adversarial set: {len(images)} images ({time.perf_counter() - started:.1f} s, cached "
          f"after the first time)", flush=True)
    return spec, images


def summary(direct: list[dict], tuned: list[dict], accuracy: str) -> None:
    same = all(abs(d["metrics"][accuracy] - t["metrics"][accuracy]) < 1e-9 for d, t in zip(direct, tuned))
    direct_s = statistics.median(d["loop_s"] for d in direct)
    tune_s = statistics.median(t["loop_s"] for t in tuned)
    speed = direct_s / tune_s
    print(f"median loop: direct {direct_s:.1f} s, under Tune {tune_s:.1f} s; Tune's speed = {speed:.3f}x the "
          f"direct loop's (target >= {TARGET}): {'met' if speed >= TARGET else 'NOT met'}")
    cpu = statistics.median(t["loop_cpu_s"] for t in tuned) / statistics.median(d["loop_cpu_s"] for d in direct)
    print(f"the loop's own CPU seconds, under Tune / direct: {cpu:.3f} (near 1 with a speed below 1: the trial "
          f"did the same work but waited for a core, taken by Ray's own processes or other load)")
    print(f"median under Tune, for information: time_total_s {statistics.median(t['time_total_s'] for t in tuned):.1f}"
          f" s, wall with Ray start-up {statistics.median(t['wall_s'] for t in tuned):.1f} s; the two trained "
          f"alike ({accuracy} equal in every repeat): {same}")


def main() -> None:
    args = arguments()
    config = {"method": args.method, "dataset": args.dataset, "iters": args.iters, **parse_assignments(args.set)}
    resolved = resolve_config(config)
    use_threads(args.threads)
    accuracy, asr = selection_metrics(resolved.selection_split)
    print(f"{args.method} on {args.dataset}: {resolved.total_iters} iterations, eval_every {resolved.eval_every}, "
          f"checkpoint_every {resolved.checkpoint_every}, batch {resolved.batch_size}, num_workers "
          f"{resolved.num_workers}, {args.threads} thread(s); {accuracy} and {asr} at every evaluation")
    spec, images = selection_set(resolved)
    direct, tuned = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            one = direct_loop(config, images, args.threads)
            direct.append(one)
            print(f"repeat {repeat}: direct loop {one['loop_s']:6.1f} s (CPU {one['loop_cpu_s']:.1f} s; prepare_run "
                  f"{one['prepare_s']:.1f} s); final {accuracy} {one['metrics'][accuracy]:.2f}, "
                  f"{asr} {one['metrics'][asr]:.2f}", flush=True)
            one = tune_loop(config, images, spec, args.threads, Path(folder), f"trial{repeat}")
            tuned.append(one)
            print(f"repeat {repeat}: Tune loop   {one['loop_s']:6.1f} s (CPU {one['loop_cpu_s']:.1f} s; time_total_s "
                  f"{one['time_total_s']:.1f} s, wall with Ray start-up {one['wall_s']:.1f} s); final "
                  f"{accuracy} {one['metrics'][accuracy]:.2f}, {asr} {one['metrics'][asr]:.2f}", flush=True)
    summary(direct, tuned, accuracy)


if __name__ == "__main__":
    main()
