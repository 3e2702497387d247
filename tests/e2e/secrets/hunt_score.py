"""Entry script that hunts for secrets from inside a replica (tests/e2e/secrets/test_replica_secrets.py).

``run()`` takes ``{"targets": [{"name", "sha256", "length"}], "paths": [...], "home": ...}``: the
secrets to look for, given only as the sha256 of their text (the script never sees them), and every
file the workspace holds (listed by the test, which can list what the replica cannot). It searches
its environment, its working folder, the workspace, the files it was named, and /proc/*/cmdline and
/proc/*/environ of every process it can read, and returns what it found.
"""

import hashlib
import json
import os
import re

_RUN = re.compile(rb"[A-Za-z0-9_\-]+")
_PEM = b"".join([b"PRIVATE ", b"KEY-----"])  # not one literal: this file must not match itself
_CAP = 8 << 20


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read(_CAP)
    except OSError:
        return None


def _texts(home, paths):
    yield "environ", "\n".join(f"{k}={v}" for k, v in os.environ.items()).encode()
    for root in (os.getcwd(), home):
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                data = _read(path)
                if data is not None:
                    yield path, data
    for path in paths:
        data = _read(path)
        if data is not None:
            yield path, data
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for what in ("cmdline", "environ"):
                data = _read(f"/proc/{pid}/{what}")
                if data:
                    yield f"/proc/{pid}/{what}", data.replace(b"\0", b" ")


def _hits(data, targets):
    lengths = {t["length"] for t in targets}
    wanted = {t["sha256"]: t["name"] for t in targets}
    for match in _RUN.finditer(data):
        run = match.group()
        for n in lengths:
            for i in range(len(run) - n + 1):
                name = wanted.get(hashlib.sha256(run[i : i + n]).hexdigest())
                if name is not None:
                    yield name
    if _PEM in data:
        yield "private-key-pem"


def init():
    pass


def run(raw):
    body = json.loads(raw)
    found, readable = [], []
    for where, data in _texts(body["home"], body["paths"]):
        if where in body["paths"]:
            readable.append(where)
        found.extend({"secret": name, "where": where} for name in set(_hits(data, body["targets"])))
    model_writable = []
    for folder, _dirs, files in os.walk(os.environ["AZUREML_MODEL_DIR"]):
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "ab"):
                    model_writable.append(path)
            except OSError:
                pass
    return {
        "uid": os.getuid(),
        "groups": os.getgroups(),
        "found": found,
        "readable": readable,
        "model_writable": model_writable,
        "env_names": sorted(os.environ),
    }
