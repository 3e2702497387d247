# pytest >= 8 only honours pytest_plugins in the root conftest.
pytest_plugins = ["tests.support.k8s.fixtures"]
