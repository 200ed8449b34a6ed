"""How many CPU threads torch may use in this process: its allotment, never more.

Two processes that each run torch with every core's threads oversubscribe the CPU (measured here: about 20x
slower per iteration on 2 cores), so every process renotune starts sets its thread count explicitly: a trial
or a Ray task to the CPUs Ray assigned it, a command to its `--cpus` or, by default, the CPUs it may run on.
"""
import os

import torch


def cpu_allotment() -> int:
    """The CPUs this process may run on (its affinity mask: what a container, cgroup or taskset allows)."""
    return len(os.sched_getaffinity(0))


def use_threads(count: float | None = None) -> int:
    """Set torch's intra-op threads to `count` CPUs (fractions round down, at least one), or to the allotment."""
    threads = max(1, int(count)) if count else cpu_allotment()
    torch.set_num_threads(threads)
    return threads
