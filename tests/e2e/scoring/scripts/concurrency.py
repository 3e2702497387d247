"""run() waits (up to `wait` s, default 10) until `want` calls were inside run() at once; returns the peak."""

import json
import threading
import time

_lock = threading.Lock()
_inside = 0
_peak = 0


def init():
    pass


def run(raw):
    global _inside, _peak
    request = json.loads(raw)
    with _lock:
        _inside += 1
        _peak = max(_peak, _inside)
    deadline = time.monotonic() + request.get("wait", 10)
    try:
        while time.monotonic() < deadline and _peak < request["want"]:
            time.sleep(0.01)
        return {"seen": _peak}
    finally:
        with _lock:
            _inside -= 1
