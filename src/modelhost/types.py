"""Shared aliases and small frozen value types used across modelhost's modules."""

from __future__ import annotations

from typing import NewType

__all__ = ["ModelId", "ReplicaId", "ServiceName", "Sha256"]

ServiceName = NewType("ServiceName", str)
ReplicaId = NewType("ReplicaId", str)
ModelId = NewType("ModelId", str)  # "<name>:<version>", v1's model id
Sha256 = NewType("Sha256", str)  # 64 lowercase hex digits
