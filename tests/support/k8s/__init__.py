"""Test infrastructure: a real Kubernetes 1.20 control plane, a stand-in kubelet and an OCI registry."""
