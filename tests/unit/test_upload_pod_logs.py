"""PodLogMirror (control/pod_logs.py): followed pod logs appended to the files the telemetry tailer
reads, once each across control-plane restarts and cut streams. The followed ``pods/log`` is a
generator here (the real one is exercised in tests/k8s/test_data_flow.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from modelhost.control.pod_logs import LogStream, PodLogMirror
from tests.support.net import wait_until


def _opener(*chunks: bytes, fail: bool = False) -> LogStream:
    def follow() -> Iterator[bytes]:
        yield from chunks
        if fail:
            raise ConnectionResetError("the API server cut the stream")

    return ("pod-a", "uid-1-0", follow)


def _mirror_once(logs: Path, stream: LogStream) -> PodLogMirror:
    mirror = PodLogMirror(logs, lambda: ["svc"], lambda service: [stream] if service == "svc" else [])
    mirror.poll_once()
    wait_until(lambda: not mirror._following, 10, what="the stream copied")
    return mirror


def test_a_restart_or_a_cut_stream_resumes_without_repeating_lines(tmp_path: Path) -> None:
    log = tmp_path / "svc" / "pod-a.log"
    _mirror_once(tmp_path, _opener(b"one\n", b"two\n", fail=True))
    assert log.read_bytes() == b"one\ntwo\n"
    # the next follow replays the container's whole log: only what is new is appended
    _mirror_once(tmp_path, _opener(b"one\n", b"two\n", b"three\n"))
    assert log.read_bytes() == b"one\ntwo\nthree\n"
    # a restarted container is a new instance: its log starts over and is appended in full
    _mirror_once(tmp_path, ("pod-a", "uid-1-1", _opener(b"boot\n")[2]))
    assert log.read_bytes() == b"one\ntwo\nthree\nboot\n"


def test_a_running_stream_is_followed_once(tmp_path: Path) -> None:
    calls = []

    def streams(service: str) -> list[LogStream]:
        calls.append(service)
        return [_opener(b"x\n")]

    mirror = PodLogMirror(tmp_path, lambda: ["svc", "svc"], streams)
    mirror._following.add("uid-1-0")  # still being followed from an earlier round
    mirror.poll_once()
    assert calls == ["svc"] and not (tmp_path / "svc" / "pod-a.log").exists()
