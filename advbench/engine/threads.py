"""How many intra-op threads torch uses for a run: the cores actually free for it, not the cores the machine has.

torch defaults to one thread per core it can see. On a shared machine that thrashes: two threads on a 2-core
machine where another process keeps one core busy took the embedded default run from 19 s to 48 s (29 s with
one thread). So, unless told (``--threads N``, or ``OMP_NUM_THREADS``, which torch itself honours), a run takes

    min(cores in this process's affinity mask, the cgroup's CPU quota, the cores idle right now)

where "idle right now" is the idle time of those cores in ``/proc/stat`` over :data:`SAMPLE_SECONDS`
(``os.getloadavg`` where ``/proc/stat`` is unreadable), at least 1. The choice and what it was made from go in
the run's manifest (``threads``). The thread count is not part of a cell's fingerprint: it can reorder CPU
reductions in the last bits only.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError

#: How long the idle time of the cores is sampled for (seconds).
SAMPLE_SECONDS = 0.2
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count of a run and where it came from.

    Attributes:
        threads: what torch is set to. source: ``--threads``, ``OMP_NUM_THREADS`` or ``auto``.
        cores: CPUs in the affinity mask. quota: the cgroup CPU quota in cores (``None``: no limit).
        idle: cores idle during the sample (``None``: not measured).
    """

    threads: int
    source: str
    cores: int
    quota: float | None = None
    idle: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def affinity_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cgroup_quota(path: Path = CGROUP_CPU_MAX) -> float | None:
    """The cgroup v2 CPU quota in cores (``"200000 100000"`` -> 2.0), or ``None`` for none or unreadable."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cpu_times(path: Path) -> dict[int, tuple[int, int]]:
    """cpu index -> (idle + iowait jiffies, total jiffies), from the per-CPU lines of /proc/stat."""
    out = {}
    for line in path.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            out[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return out


def idle_cores(seconds: float = SAMPLE_SECONDS, path: Path = PROC_STAT) -> float | None:
    """Cores of the affinity mask left idle by other processes over ``seconds`` (this one sleeps meanwhile),
    from /proc/stat; from the 1-minute load average where that is unreadable; ``None`` if neither is."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        cpus = None
    try:
        before = _cpu_times(path)
        time.sleep(seconds)
        after = _cpu_times(path)
    except (OSError, ValueError, IndexError):
        try:
            return max(0.0, affinity_cores() - os.getloadavg()[0])
        except OSError:
            return None
    idle = 0.0
    for cpu, (idle_after, total_after) in after.items():
        if (cpus is not None and cpu not in cpus) or cpu not in before:
            continue
        d_total = total_after - before[cpu][1]
        idle += (idle_after - before[cpu][0]) / d_total if d_total > 0 else 1.0
    return idle


def choose_threads(explicit: int | None = None, environ: dict[str, str] | None = None) -> ThreadChoice:
    """The thread count for a run (see the module docstring): ``explicit``, else ``OMP_NUM_THREADS``, else
    the cores free for it.

    Raises:
        ConfigError: ``explicit`` below 1, or an ``OMP_NUM_THREADS`` that is not a positive integer.
    """
    environ = os.environ if environ is None else environ
    cores = affinity_cores()
    if explicit is not None:
        if explicit < 1:
            raise ConfigError(f"--threads must be >= 1, got {explicit}")
        return ThreadChoice(int(explicit), "--threads", cores)
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        if not (omp.isdigit() and int(omp) >= 1):
            raise ConfigError(f"OMP_NUM_THREADS={omp!r} is not a positive integer: unset it or set e.g. 2")
        return ThreadChoice(int(omp), "OMP_NUM_THREADS", cores)
    quota = cgroup_quota()
    idle = idle_cores()
    limit = min(cores, math.ceil(quota) if quota is not None else cores)
    free = limit if idle is None else int(idle + 0.5)
    return ThreadChoice(max(1, min(limit, free)), "auto", cores, quota, None if idle is None else round(idle, 2))


@contextmanager
def run_threads(explicit: int | None = None) -> Iterator[ThreadChoice]:
    """torch's intra-op threads set to :func:`choose_threads`'s choice for the body (a run, or a dry run's
    calibration and pilots, which must measure with the threads the run will have), restored afterwards."""
    import torch

    choice = choose_threads(explicit)
    previous = torch.get_num_threads()
    torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        torch.set_num_threads(previous)


__all__ = ["ThreadChoice", "affinity_cores", "cgroup_quota", "choose_threads", "idle_cores", "run_threads"]
