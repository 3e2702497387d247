"""The deploy tests' real control planes (imported, not copied)."""

from tests.e2e.deploy.conftest import machine_cache, plane, shared

__all__ = ["machine_cache", "plane", "shared"]
