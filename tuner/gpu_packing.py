"""`--gpus-per-trial auto`: how many trials to pack onto one GPU, predicted from one trial measured alone.

The model (fitted to the H200 figures in benchmarks/README.md, "Trials per GPU"). A trial alone takes `step_s`
per training step and keeps the GPU busy a fraction `busy` of that time (kernels running; the rest is the
Python loop and kernel launches, which do not need the GPU). k trials on one GPU take turns on it: while the
GPU has idle time left they barely slow each other down, and once k x busy reaches the share of the GPU that
time-slicing between processes leaves usable (`USABLE_SHARE`) every step waits for the others. So k trials
together run

    k / step_s x min(1, USABLE_SHARE / (k x busy))   steps per second, i.e. min(k, USABLE_SHARE / busy) x one.

USABLE_SHARE = 0.87 fits both measured rows: resnet18 at 224 px, 69 % busy alone: 1.26x predicted for two and
four per GPU (measured 1.28x, 1.29x); the 32 px embedded ResNet, 15 % busy: 2, 4 and 5.8x predicted for 2, 4
and 8 (measured 2.31x, 3.90x, 5.83x). Memory bounds k: each trial needs its own peak (the caching allocator's
reserved bytes) plus a CUDA context of its own, times a headroom for fragmentation and uneven batches.
Among the k that fit, the choice is the smallest whose predicted throughput is within `GOOD_ENOUGH` of the best:
more trials per GPU make each trial slower (later early-stopping decisions, more memory) for nothing.

No torch here: the profile is measured in tuner.dry_run; this is the pure decision, tested on CPU.
"""
import math
from dataclasses import dataclass

CANDIDATES = (1, 2, 4, 8)  # trials per GPU: --gpus-per-trial 1, 0.5, 0.25, 0.125 (exact in binary)
USABLE_SHARE = 0.87
CONTEXT_BYTES = int(0.75 * 2**30)  # a process's CUDA context and cuDNN/cuBLAS workspaces, outside torch's counts
HEADROOM = 1.25
GOOD_ENOUGH = 0.95
GIB = 2**30


@dataclass(frozen=True)
class GpuProfile:
    """One trial measured alone on one GPU (tuner.dry_run.measure_step on CUDA)."""

    step_s: float  # seconds per training step, warmed up
    busy: float | None  # share of the step's wall time the GPU ran kernels; None: could not be measured
    peak_bytes: int  # torch.cuda.max_memory_reserved over the trial's build and steps
    total_bytes: int  # the device's memory
    device: str  # its name, e.g. "NVIDIA H200"


@dataclass(frozen=True)
class GpuChoice:
    trials: int  # per GPU
    reason: str  # one line: `auto: <reason>` is what the sweep prints
    speedups: dict[int, float]  # predicted total throughput of each candidate that fits, vs one trial alone

    @property
    def gpus_per_trial(self) -> float:
        return 1 / self.trials


def predicted_speedup(busy: float, trials: int) -> float:
    """Total steps per second of `trials` trials on one GPU, in units of one trial alone (the model above; one
    trial alone is 1 by definition: time-slicing costs only once trials share, so a saturated GPU loses)."""
    return 1.0 if trials == 1 else min(float(trials), USABLE_SHARE / max(busy, 1e-9))


def gpu_seconds_per_step(profile: GpuProfile, gpus_per_trial: float) -> float:
    """GPU-seconds one training step of this trial costs at `gpus_per_trial` (the dry run's GPU-hours): a whole
    GPU or more for its step time; packed, k = 1 / gpus_per_trial trials share the step time's GPU at the
    predicted throughput (without a busy figure: perfect sharing, the optimistic bound)."""
    if gpus_per_trial >= 1:
        return profile.step_s * gpus_per_trial
    trials = max(1, math.floor(1 / gpus_per_trial + 1e-9))  # Ray fits this many fractions on one GPU
    if profile.busy is None:
        return profile.step_s / trials
    return profile.step_s / predicted_speedup(profile.busy, trials)


def heaviest(profiles: list[GpuProfile]) -> GpuProfile:
    """One profile standing for several (a sweep's methods and datasets, which Ray packs together in any mix):
    the slowest, busiest and largest of each, so that any k of them fit and the choice does not overpack."""
    busy = None if any(profile.busy is None for profile in profiles) else max(profile.busy for profile in profiles)
    return GpuProfile(max(profile.step_s for profile in profiles), busy,
                      max(profile.peak_bytes for profile in profiles), min(profile.total_bytes for profile in profiles),
                      profiles[0].device)


def bytes_per_trial(profile: GpuProfile) -> float:
    return (profile.peak_bytes + CONTEXT_BYTES) * HEADROOM


def memory_fits(profile: GpuProfile) -> int:
    """How many trials the device's memory holds with headroom (0: not even one)."""
    return int(profile.total_bytes // bytes_per_trial(profile))


def choose_trials_per_gpu(profile: GpuProfile, max_trials: int | None = None) -> GpuChoice:
    """The number of trials per GPU for this profile; `max_trials` caps it (the CPUs that feed them,
    --max-concurrent)."""
    fits = memory_fits(profile)
    cap = min(fits, max_trials or CANDIDATES[-1])
    allowed = [k for k in CANDIDATES if k <= max(cap, 1)]
    if profile.busy is None:
        return GpuChoice(1, f"1 trial per GPU — {profile.device}'s utilisation could not be measured here, so "
                            f"packing is not predicted; {_memory(profile)}", {1: 1.0})
    speedups = {k: predicted_speedup(profile.busy, k) for k in allowed}
    best = max(speedups.values())
    trials = min(k for k, speedup in speedups.items() if speedup >= GOOD_ENOUGH * best)
    return GpuChoice(trials, _reason(profile, trials, speedups, fits, max_trials), speedups)


def _reason(profile: GpuProfile, trials: int, speedups: dict[int, float], fits: int, max_trials: int | None) -> str:
    head = (f"{trials} trial{'s' if trials > 1 else ''} per GPU — {round(100 * profile.busy)} % busy alone, "
            f"{_memory(profile)}")
    bigger = [k for k in CANDIDATES if k > trials]
    if fits < 1:
        why = "it may run out of memory even alone: lower the batch size or use a bigger GPU"
    elif not bigger:
        why = f"predicted {speedups[trials]:.2f}x one trial's throughput"
    elif bigger[0] in speedups:
        gain = speedups[bigger[0]] / speedups[trials] - 1
        more = "nothing" if gain < 0.005 else f"only {100 * gain:.0f} %"
        why = (f"predicted {speedups[trials]:.2f}x one trial's throughput; {bigger[0]} would add {more} (the GPU "
               f"is full)")
    elif fits <= trials:
        why = f"predicted {speedups[trials]:.2f}x one trial's throughput; memory holds at most {fits}"
    else:
        why = (f"predicted {speedups[trials]:.2f}x one trial's throughput; at most {max_trials} per GPU (its CPUs, "
               f"--max-concurrent)")
    return f"{head}; {why}"


def _memory(profile: GpuProfile) -> str:
    return (f"{_gib(profile.peak_bytes + CONTEXT_BYTES)} GiB each of {_gib(profile.total_bytes)} GiB on "
            f"{profile.device}")


def _gib(size: float) -> str:
    return f"{size / GIB:.1f}" if size < 10 * GIB else f"{size / GIB:.0f}"


def busy_share(kernel_intervals: list[tuple[float, float]], wall_s: float) -> float | None:
    """The share of `wall_s` covered by at least one kernel (what nvidia-smi calls utilisation), from the
    (start, end) seconds of every kernel; overlapping kernels count once. None without kernels."""
    covered, reach = 0.0, -math.inf
    for start, end in sorted(kernel_intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return min(1.0, covered / wall_s) if kernel_intervals and wall_s > 0 else None
