"""The deploy tests' real control planes (tests/e2e/deploy/conftest.py), reused."""

from tests.e2e.deploy.conftest import machine_cache, plane, shared  # noqa: F401
