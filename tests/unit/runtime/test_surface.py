"""The runtime package's public names are pinned."""

from __future__ import annotations

import modelhost.runtime as runtime


def test_exported_names() -> None:
    assert sorted(runtime.__all__) == [
        "ModelFileSpec",
        "ModelSpec",
        "ProbeSettings",
        "ReplicaState",
        "ReplicaStatus",
        "Resources",
        "Runtime",
        "ServiceDeployment",
        "ServiceState",
        "ServiceStatus",
    ]
    assert all(hasattr(runtime, name) for name in runtime.__all__)
