"""The uploader sidecar of a Kubernetes replica: collected data files back to the workspace.

    python -m modelhost.runtime.upload --artifact-url URL --service NAME --token-file PATH --data-dir DIR

Snapshot and models reach a pod through the control plane's artifact API (:mod:`.fetch`); collected
rows flow back the same way. The scoring container writes CSV files into an ``emptyDir`` shared with
this container (``MODELHOST_DATA_COLLECTION_DIR``) and seals each one at least every
``MODELHOST_DATA_COLLECTION_ROTATE_S`` seconds (:mod:`modelhost.scoring.data_spool`). Every
``--interval-s`` this process sends each sealed file under ``<data-dir>/<service>/`` with
``PUT <artifact-url>/api/v1/services/<service>/data/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<file>``
(``Authorization: Bearer <the service's upload token>``) and deletes it after a 2xx. Connection
errors, 401/403, 429 and 5xx are retried with backoff (the file stays); a file the control plane
refuses (other 4xx) moves to ``<data-dir>/.rejected/`` so it is not sent again and again.

On SIGTERM (the pod is deleted: a scale-down, a rolling update) it keeps sending until the scoring
processes are gone (their lock in the data folder is free), then sends every file left, sealed or
not, and exits 0; after ``--drain-s`` it gives up, naming what it leaves. Standard library only: the
image is the model's environment, with modelhost's base layer.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

from modelhost.scoring.data_spool import is_sealed, writers_gone

__all__ = ["UPLOAD_MAX_BYTES", "Uploader", "main", "pending_files", "upload_token"]

UPLOAD_MAX_BYTES = 256 << 20
"""The largest data file the control plane accepts (a file rotates every few seconds)."""

_TOKEN_CONTEXT = b"modelhost-data-upload:"
_REJECTED = ".rejected"

Outcome = Literal["done", "retry", "rejected"]


def upload_token(fetch_token: str, service: str) -> str:
    """The token that lets pods of ``service`` (and no other) upload data: an HMAC of the service
    name under the workspace's fetch token, so the control plane stores nothing per service."""
    return hmac.new(fetch_token.encode(), _TOKEN_CONTEXT + service.encode(), hashlib.sha256).hexdigest()


def pending_files(service_dir: Path, final: bool) -> list[Path]:
    """The CSV files ready to send, oldest name first: sealed ones, or every one when ``final``."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(service_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(folder, f)
            for f in sorted(files)
            if f.endswith(".csv") and not f.startswith(".") and (final or is_sealed(f))
        ]
    return found


@dataclass
class Uploader:
    """Sends data files of one service to the control plane and deletes them once stored."""

    artifact_url: str
    service: str
    token: str = field(repr=False)  # a secret: never in a repr or a log line
    data_dir: Path
    timeout_s: float = 30.0
    log: Callable[[str], None] = lambda line: print(f"upload: {line}", flush=True)

    @property
    def service_dir(self) -> Path:
        return self.data_dir / self.service

    def url_for(self, path: Path) -> str:
        rel = path.relative_to(self.service_dir).as_posix()
        base = self.artifact_url.rstrip("/")
        return f"{base}/api/v1/services/{urllib.parse.quote(self.service)}/data/{urllib.parse.quote(rel)}"

    def send(self, path: Path) -> Outcome:
        """One attempt at one file; deletes it after a 2xx."""
        size = path.stat().st_size
        with open(path, "rb") as body:
            request = urllib.request.Request(
                self.url_for(path),
                data=body,
                method="PUT",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "text/csv",
                    "Content-Length": str(size),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                return self._refused(path, exc)
            except (OSError, urllib.error.URLError) as exc:
                self.log(f"{path.name}: {type(exc).__name__}: {exc}; will retry")
                return "retry"
        path.unlink(missing_ok=True)
        return "done"

    def _refused(self, path: Path, exc: urllib.error.HTTPError) -> Outcome:
        if exc.code in (401, 403):
            self.log(
                f"{path.name}: the control plane refused the upload token ({exc.code}); check the "
                "Secret mounted at --token-file; will retry"
            )
            return "retry"
        if exc.code == 429 or exc.code >= 500:
            self.log(f"{path.name}: HTTP {exc.code}; will retry")
            return "retry"
        detail = exc.read(2000).decode("utf-8", "replace")
        aside = self.data_dir / _REJECTED / path.relative_to(self.data_dir)
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        self.log(f"{path.name}: refused with HTTP {exc.code} ({detail}); kept at {aside}")
        return "rejected"

    def sweep(self, final: bool) -> tuple[int, int]:
        """Send what is ready; (files sent, files left to retry)."""
        sent = left = 0
        for path in pending_files(self.service_dir, final):
            try:
                outcome = self.send(path)
            except FileNotFoundError:
                continue  # sent by an earlier sweep that timed out after the server stored it
            sent += outcome == "done"
            left += outcome == "retry"
            if outcome == "retry":
                break  # the control plane is unreachable or refusing: back off before the next file
        return sent, left


@dataclass
class Loop:
    """When to sweep: every ``interval_s``, backing off while uploads fail; drains on ``stop``."""

    uploader: Uploader
    interval_s: float = 2.0
    drain_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        delay = self.interval_s
        drain_until: float | None = None
        while True:
            if self.stop.is_set() and drain_until is None:
                drain_until = self.clock() + self.drain_s
                self.uploader.log("stopping: sending what the scoring server leaves")
            final = drain_until is not None and writers_gone(str(self.uploader.data_dir))
            try:
                _, left = self.uploader.sweep(final)
            except OSError as exc:  # the data folder itself: log and try again
                self.uploader.log(f"cannot read {self.uploader.data_dir}: {exc}")
                left = 1
            if final and not left and not pending_files(self.uploader.service_dir, True):
                return 0
            if drain_until is not None and self.clock() >= drain_until:
                rest = pending_files(self.uploader.service_dir, True)
                self.uploader.log(f"gave up after {self.drain_s:g} s with {len(rest)} file(s) unsent")
                return 1
            delay = min(delay * 2, 30.0) if left else self.interval_s
            if drain_until is None:
                self.stop.wait(delay)  # SIGTERM wakes it
            else:
                time.sleep(min(delay, 0.5))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelhost.runtime.upload", description="Send collected data files to the workspace."
    )
    parser.add_argument("--artifact-url", required=True, help="the control plane's URL as pods reach it")
    parser.add_argument("--service", required=True, help="the service whose data this pod collects")
    parser.add_argument("--token-file", required=True, type=Path, help="file holding the upload token")
    parser.add_argument("--data-dir", required=True, type=Path, help="MODELHOST_DATA_COLLECTION_DIR")
    parser.add_argument("--interval-s", type=float, default=2.0, help="seconds between looks")
    parser.add_argument("--drain-s", type=float, default=60.0, help="how long to keep sending after SIGTERM")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        print(f"upload: cannot read the token file {args.token_file}: {exc.strerror}", file=sys.stderr)
        return 10
    if not token:
        print(f"upload: the token file {args.token_file} is empty", file=sys.stderr)
        return 10
    uploader = Uploader(args.artifact_url, args.service, token, args.data_dir)
    loop = Loop(uploader, args.interval_s, args.drain_s)

    def _on_term(signum: int, frame: FrameType | None) -> None:
        loop.stop.set()

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    uploader.log(f"sending sealed files under {uploader.service_dir} to {args.artifact_url}")
    return loop.run()


if __name__ == "__main__":
    sys.exit(main())
