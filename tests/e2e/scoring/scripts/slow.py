"""run() that sleeps for as many seconds as the body says (timeouts, stuck slots, health while busy)."""

import json
import os
import time


def init():
    # Each worker process appends its pid, so a test can see init() run again after a recycle.
    with open(os.environ["SLOW_INIT_LOG"], "a") as handle:
        handle.write(f"{os.getpid()}\n")


def run(raw):
    seconds = json.loads(raw)["sleep"]
    time.sleep(seconds)
    return {"slept": seconds}
