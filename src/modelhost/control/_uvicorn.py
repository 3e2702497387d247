"""uvicorn's server with one change: a stop signal ends it like a normal return."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

__all__ = ["QuietExitServer"]


class QuietExitServer(uvicorn.Server):
    """SIGTERM/SIGINT shut down gracefully and ``run()`` returns (exit 0, our cleanup runs).

    Plain uvicorn re-raises the captured signal after its graceful shutdown, which kills the process
    before the caller's ``finally`` blocks remove ``control.json`` and close the store.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        else:
            self.should_exit = True
