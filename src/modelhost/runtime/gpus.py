"""GPU discovery: the NVIDIA GPUs ``nvidia-smi`` reports, or none where it is absent or fails.

Callers take discovery as a function argument (``Callable[[], tuple[Gpu, ...]]``) so tests can hand
the allocation logic a fake inventory while the real discovery runs as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Gpu", "discover_gpus", "parse_nvidia_smi"]

_QUERY = ["--query-gpu=index,uuid,name", "--format=csv,noheader"]


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str = ""


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """Parse ``nvidia-smi --query-gpu=index,uuid[,name] --format=csv,noheader`` output."""
    gpus: list[Gpu] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        gpus.append(Gpu(index=int(parts[0]), uuid=parts[1], name=", ".join(parts[2:])))
    return tuple(sorted(gpus, key=lambda g: g.index))


def discover_gpus(nvidia_smi: str = "nvidia-smi", timeout_s: float = 10.0) -> tuple[Gpu, ...]:
    """The GPUs of this machine; none when ``nvidia-smi`` is missing, fails or times out."""
    exe = shutil.which(nvidia_smi)
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, *_QUERY], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else ()
