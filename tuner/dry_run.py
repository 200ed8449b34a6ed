"""`tuner.sweep --dry-run`: what a sweep will cost, printed before anything starts.

Per part: the trial count, the longest trial, the total training iterations; the seconds per training step of
each method, measured here on a few steps with the trial's threads (and its GPU when this machine has one),
turned into CPU- or GPU-hours; and the disk the checkpoints take (one full resume state per running trial,
the evaluation model alone per finished one).
"""
import argparse
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainables.config import TrialConfig
from trainables.threads import use_threads
from trainables.trial import prepare_run
from tuner.run_dir import human_size
from tuner.sweep_plan import Plan

TIMED_STEPS = 3


@dataclass(frozen=True)
class StepCost:
    seconds: float  # per training step, after one warm-up step
    device: str
    resume_bytes: int  # run.pt: the whole resume state
    model_bytes: int  # model.pt: the evaluation model


def state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(value) for value in state)
    return 0


def measure_step(config: TrialConfig, cpus: float, gpus: float) -> StepCost:
    device = "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"
    use_threads(max(1, int(cpus)))
    run = prepare_run(config, device)
    batches = _endless(torch.utils.data.DataLoader(run.data.train, batch_size=config.batch_size, shuffle=True))
    timings = []
    for _ in range(TIMED_STEPS + 1):
        images, labels = next(batches)
        started = time.perf_counter()
        run.step(images.to(device), labels.to(device))
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    return StepCost(sum(timings[1:]) / TIMED_STEPS, device, state_bytes(run.state_dict()),
                    state_bytes(run.evaluation_state()))


def _endless(loader: torch.utils.data.DataLoader) -> Iterator:
    """Batches without end: a training split may hold fewer than the timed steps' batches."""
    while True:
        yield from loader


def trial_iterations(planned: Plan, args: argparse.Namespace) -> list[tuple[TrialConfig, int]]:
    """(config, iterations) per trial: exact for a grid; sampled searches are bounded by the longest corner."""
    if args.search == "grid":
        return [(config, config.total_iters) for config in planned.configs] * args.num_samples
    longest = max(planned.configs, key=lambda config: config.total_iters)
    return [(longest, longest.total_iters)] * planned.expected_trials


def part_summary(args: argparse.Namespace, planned: Plan) -> list[str]:
    trials = trial_iterations(planned, args)
    costs = {}
    for config, _ in trials:
        if config.method not in costs:
            costs[config.method] = measure_step(config, args.cpus_per_trial, args.gpus_per_trial)
    seconds = sum(iterations * costs[config.method].seconds for config, iterations in trials)
    # Sampled searches are bounded by their longest corner; early stopping only ever shortens the grid's trials.
    bound = "" if args.search == "grid" and args.scheduler == "fifo" else "at most "
    lines = [f"sweep {planned.name}: space {planned.space.name}; {len(trials)} trials ({args.search} search, "
             f"{args.scheduler} scheduler), selected on {planned.split}",
             f"  longest trial {planned.longest} iterations; {bound}{sum(i for _, i in trials)} training iterations"]
    threads = max(1, int(args.cpus_per_trial))
    lines += [f"  {method}: {cost.seconds * 1000:.0f} ms per step measured here on {cost.device}, {threads} "
              f"thread{'s' if threads > 1 else ''}" for method, cost in costs.items()]
    lines.append("  " + compute_hours(args, seconds, {cost.device for cost in costs.values()}))
    lines.append("  " + checkpoint_disk(args, trials, costs))
    if planned.refit:  # how many depends on what validation chooses: each method's best and the Pareto set
        lines.append("  then --refit re-trains the configurations chosen on validation (each method's best per dataset "
                     "and the Pareto set, every seed) on training + validation images: a few more trials of the "
                     "same lengths")
    return lines


def compute_hours(args: argparse.Namespace, seconds: float, devices: set[str]) -> str:
    if args.gpus_per_trial > 0 and devices != {"cuda"}:
        return (f"GPU-hours: not measured (no GPU on this machine); on its CPUs the steps alone would take "
                f"{seconds / 3600:.2f} h per trial slot")
    if args.gpus_per_trial > 0:
        return f"training steps: ~{seconds * args.gpus_per_trial / 3600:.2f} GPU-hours"
    return f"training steps: ~{seconds * args.cpus_per_trial / 3600:.2f} CPU-hours (evaluation and attacks extra)"


def local_slots(args: argparse.Namespace) -> int | None:
    """How many trials a Ray started here runs at once (its CPUs / CPUs per trial); None on a cluster."""
    if args.address:
        return None
    return max(1, int((args.num_cpus or os.cpu_count() or 1) // args.cpus_per_trial))


def checkpoint_disk(args: argparse.Namespace, trials: list, costs: dict[str, StepCost]) -> str:
    finished = sum(costs[config.method].model_bytes for config, _ in trials)
    concurrent = min(len(trials), args.max_concurrent or len(trials), local_slots(args) or len(trials))
    running = concurrent * max(cost.resume_bytes for cost in costs.values())
    return (f"checkpoints: {human_size(finished)} once every trial finished (evaluation models only), up to "
            f"{human_size(finished + running)} while {concurrent} trials run")


def plan_summary(args: argparse.Namespace, plans: list[Plan]) -> str:
    lines = ["dry run: nothing was started"]
    for planned in plans:
        lines += part_summary(args, planned)
    return "\n".join(lines)
