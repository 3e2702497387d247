"""Resource requests -> process limits on one machine (pure)."""

from __future__ import annotations

import pytest

from modelhost.errors import ConflictError, ValidationError
from modelhost.runtime.base import Resources
from modelhost.runtime.gpus import Gpu
from modelhost.runtime.resources import (
    GIB,
    Machine,
    check_fits,
    choose_cpus,
    choose_gpus,
    memory_limit_bytes,
    nice_for,
    plan_limits,
)

GPUS = tuple(Gpu(index=i, uuid=f"GPU-{i}") for i in range(4))
MACHINE = Machine(cpus=(0, 1, 2, 3), memory_bytes=8 * GIB, gpus=GPUS)


@pytest.mark.parametrize(
    ("cores", "usage", "expected"),
    [
        (0.1, {}, (0,)),
        (1.0, {0: 1}, (1,)),
        (1.5, {0: 1, 1: 1}, (2, 3)),
        (2.0, {0: 2, 1: 1, 2: 1, 3: 0}, (1, 3)),
        (4.0, {0: 5}, (0, 1, 2, 3)),
    ],
    ids=["fraction", "spread", "ceil", "least-used", "all"],
)
def test_choose_cpus(cores: float, usage: dict[int, int], expected: tuple[int, ...]) -> None:
    assert choose_cpus(cores, MACHINE.cpus, usage) == expected


@pytest.mark.parametrize(("cores", "nice"), [(0.1, 9), (0.5, 5), (0.99, 0), (1, 0), (3.5, 0)])
def test_nice_for(cores: float, nice: int) -> None:
    assert nice_for(cores) == nice


def test_memory_limit_is_the_limit_else_the_request() -> None:
    assert memory_limit_bytes(Resources(memory_gb=0.5)) == GIB // 2
    assert memory_limit_bytes(Resources(memory_gb=0.5, memory_gb_limit=2)) == 2 * GIB


def test_choose_gpus_gives_free_ones() -> None:
    assert choose_gpus(0, GPUS, set()) == ()
    assert choose_gpus(1, GPUS, {0}) == (1,)
    assert choose_gpus(2, GPUS, {1}, replicas=1) == (0, 2)


def test_no_gpus_at_all_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as err:
        choose_gpus(1, (), set())
    assert (
        str(err.value)
        == "gpu_cores=1 requested for 1 replica(s) but this machine has 0 GPUs available (0 in use)"
    )


def test_gpus_all_taken_is_a_conflict() -> None:
    with pytest.raises(ConflictError, match=r"has 1 GPUs available \(3 in use\)"):
        choose_gpus(1, GPUS, {0, 1, 2}, replicas=2)
    with pytest.raises(ValidationError, match="for 5 replica"):
        choose_gpus(1, GPUS, set(), replicas=5)


@pytest.mark.parametrize(
    ("res", "message"),
    [
        (Resources(cpu_cores=5), "cpu_cores=5 requested but this machine has 4 CPUs"),
        (Resources(cpu_cores=1, cpu_cores_limit=4.5), "cpu_cores=4.5 requested"),
        (Resources(memory_gb=9), "memory_gb=9 requested but this machine has 8.0 GB of memory"),
        (Resources(memory_gb=1, memory_gb_limit=16), "memory_gb=16 requested"),
        (Resources(cpu_cores=0), "are not valid"),
        (Resources(gpu_cores=-1), "are not valid"),
    ],
)
def test_check_fits_refuses_what_the_machine_lacks(res: Resources, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        check_fits(res, MACHINE)


def test_plan_limits() -> None:
    limits = plan_limits(Resources(cpu_cores=1.2, memory_gb=1, gpu_cores=1), MACHINE, {0: 1, 1: 1}, {0})
    assert limits.cpus == (2, 3)
    assert limits.nice == 0
    assert limits.memory_bytes == GIB
    assert limits.gpus == (1,)
    assert limits.env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
    assert plan_limits(Resources(), MACHINE, {}, set()).env()["CUDA_VISIBLE_DEVICES"] == ""
