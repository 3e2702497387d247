"""Following one long-running operation of the control plane: its state and its log, live.

``GET /api/v1/operations/{id}?offset=n&wait=s`` long-polls: it answers as soon as a log line past
``offset`` exists or the operation ends, or after ``wait`` seconds. :meth:`OperationWatch.follow`
yields each line the moment it arrives (v1's SDK polled every 5 s and printed in bursts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from modelhost.errors import ModelhostError, from_payload
from modelhost.sdk._client import ControlClient

__all__ = ["TERMINAL_STATES", "OperationTimeout", "OperationWatch", "operation_of"]

TERMINAL_STATES = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})
LONG_POLL_S = 20.0


class OperationTimeout(Exception):
    """:meth:`OperationWatch.follow` passed its deadline while the operation still ran."""


def operation_of(answer: Any) -> dict[str, Any] | None:
    """The operation dict in a 202 answer (``{"operation": {...}, ...}`` or the operation itself)."""
    if isinstance(answer, Mapping):
        inner = answer.get("operation")
        if isinstance(inner, Mapping):
            return dict(inner)
        if "id" in answer and "state" in answer:
            return dict(answer)
    return None


class OperationWatch:
    """The client's view of one operation: state, error and the log lines read so far."""

    def __init__(self, client: ControlClient, operation: Mapping[str, Any]) -> None:
        self._client = client
        self.payload: dict[str, Any] = dict(operation)
        self.id: str = str(operation["id"])
        self.lines: list[str] = []
        self._offset = 0

    @classmethod
    def by_id(cls, client: ControlClient, op_id: str) -> OperationWatch:
        return cls(client, {"id": op_id, "state": "Running"})

    @property
    def state(self) -> str:
        return str(self.payload.get("state") or "Running")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def error_payload(self) -> dict[str, Any] | None:
        error = self.payload.get("error")
        return dict(error) if isinstance(error, Mapping) else None

    def error(self) -> ModelhostError | None:
        """The operation's error as the ``modelhost.errors`` class the control plane raised."""
        payload = self.error_payload
        return None if payload is None else from_payload(500, {"error": payload})

    def poll(self, wait_s: float = 0.0) -> list[str]:
        """Fetch the state and the lines that arrived since the last call (long-polls ``wait_s``)."""
        params = {"offset": self._offset, "wait": wait_s}
        self.payload = dict(
            self._client.get(f"/api/v1/operations/{self.id}", params=params, timeout_s=wait_s + 30.0)
        )
        raw = self.payload.get("log", self.payload.get("lines")) or []
        new = [str(entry[1]) if isinstance(entry, list | tuple) else str(entry) for entry in raw]
        self._offset = int(self.payload.get("next_offset", self._offset + len(new)))
        self.lines.extend(new)
        return new

    def follow(self, timeout_s: float | None = None, wait_s: float = LONG_POLL_S) -> Iterator[str]:
        """Yield log lines as they arrive until the operation ends; raise :class:`OperationTimeout`
        after ``timeout_s`` seconds (None: no limit)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = wait_s if deadline is None else max(0.0, min(wait_s, deadline - time.monotonic()))
            yield from self.poll(wait)
            if self.done:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise OperationTimeout(self.id)

    def wait(self, timeout_s: float | None = None) -> str:
        """Wait quietly for the end; returns the terminal state."""
        for _ in self.follow(timeout_s):
            pass
        return self.state
