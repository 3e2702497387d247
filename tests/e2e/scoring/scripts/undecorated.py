"""Undecorated run(): receives the body (or the GET query as JSON text) as a str."""

import json


def init():
    print("undecorated init done")


def run(raw):
    if raw.startswith("{"):
        data = json.loads(raw)
        if data.get("mode") == "fail":
            raise ValueError("asked to fail")
        if data.get("mode") == "unserializable":
            return {"x": object()}
        if data.get("mode") == "none":
            return None
    return {"type": type(raw).__name__, "raw": raw}
