"""`tuner.sweep --dry-run`: what a sweep will cost, printed before anything starts.

Per part: the trial count, the longest trial, the total training iterations; the seconds per training step of
each method, measured here on a few steps with the trial's threads (and its GPU when this machine has one),
turned into CPU- or GPU-hours; and the disk the checkpoints take (one full resume state per running trial,
the evaluation model alone per finished one). On a GPU, also how many trials to pack per GPU
(`--gpus-per-trial auto`, tuner.gpu_packing), which the sweep resolves here before Ray starts.
"""
import contextlib
import gc
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from trainables.config import TrialConfig
from trainables.errors import UserError
from trainables.threads import use_threads
from trainables.trial import prepare_run
from tuner.cli import GPUS_AUTO
from tuner.gpu_packing import GpuChoice, GpuProfile, busy_share, choose_trials_per_gpu, gpu_seconds_per_step, heaviest
from tuner.run_dir import human_size
from tuner.settings import SweepSettings
from tuner.sweep_plan import Plan

TIMED_STEPS = 3
# On CUDA the first steps pick cuDNN algorithms and grow the allocator, and a step is milliseconds: more of both.
GPU_WARM_UP_STEPS, GPU_TIMED_STEPS, PROFILED_STEPS = 5, 20, 5


@dataclass(frozen=True)
class StepCost:
    seconds: float  # per training step, after warm-up steps
    device: str
    resume_bytes: int  # run.pt: the whole resume state
    model_bytes: int  # model.pt: the evaluation model
    gpu: GpuProfile | None = None  # on CUDA: what --gpus-per-trial auto decides from


def state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(value) for value in state)
    return 0


def wants_gpu(gpus: float | str) -> bool:
    return gpus == GPUS_AUTO or gpus > 0


def measure_step(config: TrialConfig, cpus: float, gpus: float | str) -> StepCost:
    device = "cuda" if wants_gpu(gpus) and torch.cuda.is_available() else "cpu"
    use_threads(max(1, int(cpus)))
    if device == "cuda":  # this trial's peak alone, not an earlier measurement's cached blocks
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    run = prepare_run(config, device)
    batches = _endless(torch.utils.data.DataLoader(run.data.train, batch_size=config.batch_size, shuffle=True))
    warm_up, timed = (GPU_WARM_UP_STEPS, GPU_TIMED_STEPS) if device == "cuda" else (1, TIMED_STEPS)
    for _ in range(warm_up):
        timed_step(run, next(batches), device)
    seconds = sum(timed_step(run, next(batches), device) for _ in range(timed)) / timed
    gpu = gpu_profile(run, batches, seconds) if device == "cuda" else None
    return StepCost(seconds, device, state_bytes(run.state_dict()), state_bytes(run.evaluation_state()), gpu)


def timed_step(run, batch: tuple[torch.Tensor, torch.Tensor], device: str) -> float:
    """Wall seconds of one training step, the batch's copy to the device included. A step ends with the GPU
    done (TransferRun.step reads its loss back), so synchronizing here times what a trial's loop waits for."""
    images, labels = batch
    started = time.perf_counter()
    run.step(images.to(device), labels.to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def gpu_profile(run, batches: Iterator, step_s: float) -> GpuProfile:
    """One trial alone on this GPU: its step time, how busy it keeps the GPU, its peak memory (reserved by the
    caching allocator: what other processes cannot have), and the device."""
    peak, sampled = torch.cuda.max_memory_reserved(), nvml_busy()  # NVML's sample: right after the timed steps
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    busy = gpu_busy(run, batches, step_s)
    return GpuProfile(step_s, sampled if busy is None else busy, peak, properties.total_memory, properties.name)


def nvml_busy() -> float | None:
    """NVML's utilisation over its last sample period (1/6 to 1 s; torch.cuda.utilization needs pynvml)."""
    with contextlib.suppress(Exception):  # no pynvml, no NVML permission: not measured
        return torch.cuda.utilization() / 100
    return None


def gpu_busy(run, batches: Iterator, step_s: float) -> float | None:
    """The share of a step's wall time the GPU runs kernels: every kernel's span over PROFILED_STEPS more steps,
    from torch.profiler (CUPTI), merged, divided by those steps' wall time as measured unprofiled (the profiler
    slows the Python loop, not the kernels). None where the profiler sees no kernels (then NVML's sample)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    steps = [next(batches) for _ in range(PROFILED_STEPS)]
    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
            for images, labels in steps:
                run.step(images.to("cuda"), labels.to("cuda"))
            torch.cuda.synchronize()
    except RuntimeError:  # CUPTI unavailable (some containers)
        return None
    kernels = [(event.time_range.start / 1e6, event.time_range.end / 1e6) for event in profiler.events()
               if event.device_type == DeviceType.CUDA]
    return busy_share(kernels, step_s * PROFILED_STEPS)


def _endless(loader: torch.utils.data.DataLoader) -> Iterator:
    """Batches without end: a training split may hold fewer than the timed steps' batches."""
    while True:
        yield from loader


def trial_iterations(planned: Plan, settings: SweepSettings) -> list[tuple[TrialConfig, int]]:
    """(config, iterations) per trial: exact for a grid; sampled searches are bounded by the longest corner."""
    if settings.search == "grid":
        return [(config, config.total_iters) for config in planned.configs] * settings.num_samples
    longest = max(planned.configs, key=lambda config: config.total_iters)
    return [(longest, longest.total_iters)] * planned.expected_trials


def part_summary(settings: SweepSettings, planned: Plan) -> list[str]:
    trials = trial_iterations(planned, settings)
    costs = {}
    for config, _ in trials:
        if config.method not in costs:
            costs[config.method] = measure_step(config, settings.cpus_per_trial, settings.gpus_per_trial)
    choice = packing_choice(settings, costs)
    gpus = choice.gpus_per_trial if choice and settings.gpus_per_trial == GPUS_AUTO else settings.gpus_per_trial
    # Sampled searches are bounded by their longest corner; early stopping only ever shortens the grid's trials.
    bound = "" if settings.search == "grid" and settings.scheduler == "fifo" else "at most "
    lines = [f"sweep {planned.name}: space {planned.space.name}; {len(trials)} trials ({settings.search} search, "
             f"{settings.scheduler} scheduler), selected on {planned.split}",
             f"  longest trial {planned.longest} iterations; {bound}{sum(i for _, i in trials)} training iterations"]
    threads = max(1, int(settings.cpus_per_trial))
    lines += [f"  {method}: {cost.seconds * 1000:.0f} ms per step measured here on {cost.device}, {threads} "
              f"thread{'s' if threads > 1 else ''}" for method, cost in costs.items()]
    lines += [f"  {line}" for line in packing_lines(settings, choice)]
    lines.append("  " + compute_hours(settings, trials, costs, gpus))
    lines.append("  " + checkpoint_disk(settings, trials, costs))
    if planned.refit:  # how many depends on what validation chooses: each method's best and the Pareto set
        lines.append("  then --refit re-trains the configurations chosen on validation (each method's best per dataset "
                     "and the Pareto set, every seed) on training + validation images: a few more trials of the "
                     "same lengths")
    return lines


def compute_hours(settings: SweepSettings, trials: list, costs: dict[str, StepCost], gpus: float | str) -> str:
    seconds = sum(iterations * costs[config.method].seconds for config, iterations in trials)
    if wants_gpu(gpus) and {cost.device for cost in costs.values()} != {"cuda"}:
        return (f"GPU-hours: not measured (no GPU on this machine); on its CPUs the steps alone would take "
                f"{seconds / 3600:.2f} h per trial slot")
    if wants_gpu(gpus):  # packed trials slow each other down: GPU time per step from tuner.gpu_packing's model
        gpu_seconds = sum(iterations * gpu_seconds_per_step(costs[config.method].gpu, gpus)
                          for config, iterations in trials)
        return f"training steps: ~{gpu_seconds / 3600:.2f} GPU-hours at --gpus-per-trial {gpus:g}"
    return f"training steps: ~{seconds * settings.cpus_per_trial / 3600:.2f} CPU-hours (evaluation and attacks extra)"


def packing_lines(settings: SweepSettings, choice: GpuChoice | None) -> list[str]:
    """The dry run's word on --gpus-per-trial auto: its choice, or why it cannot choose here."""
    if choice is None:
        return ["auto: no GPU on this machine to measure a trial, so the sweep would stop; run the dry run on a GPU "
                "machine or give --gpus-per-trial a number"] if settings.gpus_per_trial == GPUS_AUTO else []
    chooser = "auto" if settings.gpus_per_trial == GPUS_AUTO else "--gpus-per-trial auto would choose"
    return [f"{chooser}: {choice.reason}"]


def packing_choice(settings: SweepSettings, costs: dict[str, StepCost]) -> GpuChoice | None:
    """Trials per GPU for these measured methods (which Ray packs together in any mix); None without a GPU."""
    profiles = [cost.gpu for cost in costs.values() if cost.gpu is not None]
    return choose_trials_per_gpu(heaviest(profiles), trials_cap(settings)) if profiles else None


def trials_cap(settings: SweepSettings) -> int | None:
    """At most this many trials can share one GPU: --max-concurrent, and a local Ray's CPU slots, over its GPUs
    (Ray spreads trials over them); None: no limit known (a cluster without --max-concurrent)."""
    gpus = max(1, int(settings.num_gpus or torch.cuda.device_count())) if not settings.address else 1
    caps = [math.ceil(settings.max_concurrent / gpus)] if settings.max_concurrent else []
    slots = local_slots(settings)
    if slots is not None:
        caps.append(max(1, slots // gpus))
    return min(caps) if caps else None


def resolve_auto_gpus(settings: SweepSettings, plans: list[Plan]) -> SweepSettings:
    """--gpus-per-trial auto, before Ray starts: the plans' heaviest trial of each method (largest batch), per
    dataset and backbone, measured alone on this machine's GPU; the choice printed as `auto: ...`; the settings
    with its number, which sweep.json records so that --resume reuses it."""
    if not torch.cuda.is_available():
        cluster = "; with --address it measures on this machine, not on the cluster's GPUs" if settings.address else ""
        raise UserError(f"--gpus-per-trial auto needs a GPU on this machine to measure a trial{cluster}; give a number")
    heaviest_configs = {}
    for config in (config for planned in plans for config in planned.configs):
        key = (config.method, config.dataset, config.data_root, config.arch)
        if key not in heaviest_configs or config.batch_size > heaviest_configs[key].batch_size:
            heaviest_configs[key] = config
    costs = {str(key): measure_step(config, settings.cpus_per_trial, GPUS_AUTO)
             for key, config in heaviest_configs.items()}
    torch.cuda.empty_cache()  # the measured trial's cached blocks go to the trials (the driver keeps its context)
    choice = packing_choice(settings, costs)
    where = " (measured on this machine's GPU; the cluster's must be the same kind)" if settings.address else ""
    print(f"auto: {choice.reason}{where}", flush=True)
    return replace(settings, gpus_per_trial=choice.gpus_per_trial)


def local_slots(settings: SweepSettings) -> int | None:
    """How many trials a Ray started here runs at once (its CPUs / CPUs per trial); None on a cluster."""
    if settings.address:
        return None
    return max(1, int((settings.num_cpus or os.cpu_count() or 1) // settings.cpus_per_trial))


def checkpoint_disk(settings: SweepSettings, trials: list, costs: dict[str, StepCost]) -> str:
    finished = sum(costs[config.method].model_bytes for config, _ in trials)
    concurrent = min(len(trials), settings.max_concurrent or len(trials), local_slots(settings) or len(trials))
    running = concurrent * max(cost.resume_bytes for cost in costs.values())
    return (f"checkpoints: {human_size(finished)} once every trial finished (evaluation models only), up to "
            f"{human_size(finished + running)} while {concurrent} trials run")


def plan_summary(settings: SweepSettings, plans: list[Plan]) -> str:
    lines = ["dry run: nothing was started"]
    for planned in plans:
        lines += part_summary(settings, planned)
    return "\n".join(lines)
