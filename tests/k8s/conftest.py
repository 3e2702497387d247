"""Kubernetes tests. The fixtures (k8s_cluster, k8s_node, k8s_namespace, k8s_images, oci_registry) come
from the plugin tests/support/k8s/fixtures.py, registered in the root tests/conftest.py (pytest >= 8
honours ``pytest_plugins`` only there)."""
