"""init() waits for a file to appear, so a test can observe readiness before and after init()."""

import os
import time


def init():
    gate = os.environ["SLOW_INIT_GATE"]
    while not os.path.exists(gate):
        time.sleep(0.02)


def run(data):
    return "ok"
