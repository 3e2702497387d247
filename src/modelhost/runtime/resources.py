"""Pure mapping from a replica's v1 resource request to process limits on one machine.

* ``memory_gb`` (or ``memory_gb_limit``) -> a soft ``RLIMIT_DATA`` of that many GiB: heap and private
  writable mappings, not address space (``RLIMIT_AS`` breaks CUDA, the JVM and BLAS thread pools,
  which reserve far more address space than they use). Allocation beyond it fails (MemoryError).
* ``cpu_cores`` (or ``cpu_cores_limit``) -> CPU affinity to ``ceil(cores)`` CPUs, the least used by
  other replicas first, and a ``nice`` value that lets fractional requests yield. Fractions of a
  core are not enforced locally.
* ``gpu_cores`` -> whole GPUs, never shared between replicas, exposed by index in
  ``CUDA_VISIBLE_DEVICES`` (with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers them as
  ``nvidia-smi`` does); ``gpu_cores=0`` -> ``CUDA_VISIBLE_DEVICES=""``.

Requests larger than the machine are refused with ValidationError; GPUs that exist but are all
taken by other replicas with ConflictError.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from modelhost.errors import ConflictError, ValidationError
from modelhost.runtime.base import Resources
from modelhost.runtime.gpus import Gpu

__all__ = [
    "GIB",
    "Machine",
    "ProcessLimits",
    "check_fits",
    "choose_cpus",
    "choose_gpus",
    "memory_limit_bytes",
    "nice_for",
    "plan_limits",
]

GIB = 1024**3


@dataclass(frozen=True)
class Machine:
    """What this machine offers: the CPU ids this process may use, its RAM and its GPUs."""

    cpus: tuple[int, ...]
    memory_bytes: int
    gpus: tuple[Gpu, ...] = ()


@dataclass(frozen=True)
class ProcessLimits:
    """How one replica process is confined."""

    cpus: tuple[int, ...]
    nice: int
    memory_bytes: int
    gpus: tuple[int, ...]

    def env(self) -> dict[str, str]:
        """The environment variables that carry the GPU choice."""
        return {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in self.gpus),
        }


def _cpu_cores(res: Resources) -> float:
    return max(res.cpu_cores, res.cpu_cores_limit or 0.0)


def memory_limit_bytes(res: Resources) -> int:
    """The memory cap: ``memory_gb_limit`` when set, else the request ``memory_gb`` (GiB)."""
    gb = res.memory_gb_limit if res.memory_gb_limit is not None else res.memory_gb
    return int(gb * GIB)


def nice_for(cpu_cores: float) -> int:
    """0 for a whole core or more; a fractional request yields in proportion (0.1 core -> nice 9)."""
    if cpu_cores >= 1:
        return 0
    return min(19, max(0, round(10 * (1 - cpu_cores))))


def check_fits(res: Resources, machine: Machine) -> None:
    """Refuse a request one replica could never get on this machine."""
    cores = _cpu_cores(res)
    if res.cpu_cores <= 0 or res.memory_gb <= 0 or res.gpu_cores < 0:
        raise ValidationError(
            f"resources cpu_cores={res.cpu_cores}, memory_gb={res.memory_gb}, "
            f"gpu_cores={res.gpu_cores} are not valid",
            hint="cpu_cores and memory_gb must be > 0 and gpu_cores >= 0.",
        )
    if cores > len(machine.cpus):
        raise ValidationError(
            f"cpu_cores={cores:g} requested but this machine has {len(machine.cpus)} CPUs",
            hint=f"Ask for at most cpu_cores={len(machine.cpus)} when deploying locally.",
        )
    if memory_limit_bytes(res) > machine.memory_bytes:
        have = machine.memory_bytes / GIB
        raise ValidationError(
            f"memory_gb={memory_limit_bytes(res) / GIB:g} requested "
            f"but this machine has {have:.1f} GB of memory",
            hint=f"Ask for at most memory_gb={math.floor(have * 10) / 10:g} when deploying locally.",
        )


def choose_cpus(cpu_cores: float, cpus: Sequence[int], usage: Mapping[int, int]) -> tuple[int, ...]:
    """``ceil(cpu_cores)`` CPUs, those used by the fewest replicas first (lowest id on ties)."""
    count = min(len(cpus), max(1, math.ceil(cpu_cores)))
    ranked = sorted(cpus, key=lambda c: (usage.get(c, 0), c))
    return tuple(sorted(ranked[:count]))


def choose_gpus(
    gpu_cores: int, gpus: Sequence[Gpu], in_use: Collection[int], replicas: int = 1
) -> tuple[int, ...]:
    """``gpu_cores`` free GPU indexes for one replica, after checking ``replicas`` of them fit.

    Raises ValidationError when the machine has too few GPUs at all, ConflictError when enough
    exist but other replicas hold them.
    """
    if gpu_cores == 0:
        return ()
    need = gpu_cores * replicas
    free = [g.index for g in gpus if g.index not in in_use]
    if need > len(free):
        message = (
            f"gpu_cores={gpu_cores} requested for {replicas} replica(s) but this machine has "
            f"{len(free)} GPUs available ({len(gpus) - len(free)} in use)"
        )
        if need > len(gpus):
            raise ValidationError(
                message, hint="Lower gpu_cores or the replica count, or deploy to a machine with more GPUs."
            )
        raise ConflictError(message, hint="Scale down or delete a service that holds GPUs, then try again.")
    return tuple(sorted(free)[:gpu_cores])


def plan_limits(
    res: Resources,
    machine: Machine,
    cpu_usage: Mapping[int, int],
    gpus_in_use: Collection[int],
    replicas: int = 1,
) -> ProcessLimits:
    """The limits of one new replica, given what the replicas already running hold."""
    check_fits(res, machine)
    return ProcessLimits(
        cpus=choose_cpus(_cpu_cores(res), machine.cpus, cpu_usage),
        nice=nice_for(res.cpu_cores),
        memory_bytes=memory_limit_bytes(res),
        gpus=choose_gpus(res.gpu_cores, machine.gpus, gpus_in_use, replicas),
    )
