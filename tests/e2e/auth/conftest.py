"""The deploy tests' real control planes, reused (one per module, one machine cache per session)."""

from __future__ import annotations

from tests.e2e.deploy.conftest import machine_cache, plane, shared

__all__ = ["machine_cache", "plane", "shared"]
