"""GPU discovery: parsing nvidia-smi's CSV, and none where it is absent."""

from __future__ import annotations

from modelhost.runtime.gpus import Gpu, discover_gpus, parse_nvidia_smi


def test_parse_nvidia_smi() -> None:
    text = (
        "1, GPU-bbbbbbbb-0000-0000-0000-000000000001, NVIDIA H100 80GB HBM3\n"
        "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3\n"
        "\n"
        "No devices were found\n"
    )
    assert parse_nvidia_smi(text) == (
        Gpu(0, "GPU-aaaaaaaa-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3"),
        Gpu(1, "GPU-bbbbbbbb-0000-0000-0000-000000000001", "NVIDIA H100 80GB HBM3"),
    )


def test_parse_two_columns() -> None:
    assert parse_nvidia_smi("0, GPU-x\n") == (Gpu(0, "GPU-x", ""),)


def test_no_nvidia_smi_means_no_gpus() -> None:
    assert discover_gpus("modelhost-no-such-nvidia-smi") == ()


def test_real_discovery_returns_gpus() -> None:
    gpus = discover_gpus()
    assert all(isinstance(g, Gpu) and g.uuid for g in gpus)
    assert [g.index for g in gpus] == sorted(g.index for g in gpus)
