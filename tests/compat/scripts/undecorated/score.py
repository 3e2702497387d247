"""Undecorated entry script: run() receives the request body (or GET query) as a str.

A JSON object body with a "mode" key picks one of the output behaviours the compatibility suite
checks; any other body is echoed back as {"received": <str>, "type": <type name>}.
"""

import json
import time

import numpy as np

_state = {"init_calls": 0}


def init():
    _state["init_calls"] += 1


def _mode(data):
    try:
        obj = json.loads(data)
    except ValueError:
        return None, None
    if isinstance(obj, dict) and "mode" in obj:
        return obj["mode"], obj
    return None, None


def run(data):
    mode, obj = _mode(data)
    if mode is None:
        return {"received": data, "type": type(data).__name__}
    if mode == "dict":
        return {"result": [1, 2.5, "three", None, True], "init_calls": _state["init_calls"]}
    if mode == "json_dumps":
        # 14 of 85 real scripts do this: the client gets a JSON string literal.
        return json.dumps({"result": 42})
    if mode == "str":
        return "plain string"
    if mode == "list":
        return [1, 2, 3]
    if mode == "none":
        return None
    if mode == "error_text":
        try:
            json.loads("not json")
        except Exception as exc:
            return str(exc)
    if mode == "raise":
        raise ValueError("boom from run()")
    if mode == "unserializable":
        return {"value": {1, 2}}
    if mode == "float64":
        return {"value": np.float64(1.5)}
    if mode == "int64":
        return {"value": np.int64(3)}
    if mode == "nan":
        return {"value": float("nan"), "inf": float("inf")}
    if mode == "tuple":
        return (1, "two")
    if mode == "sleep":
        time.sleep(float(obj["seconds"]))
        return {"slept": obj["seconds"]}
    return {"unknown_mode": mode}
