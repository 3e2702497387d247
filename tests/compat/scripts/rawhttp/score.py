"""@rawhttp entry script: run() gets the request object and may return AMLResponse.

The ``case`` query parameter picks the behaviour; without it GET returns the full path, POST echoes
the request and any other method gets the 500 "bad request" real scripts return.
"""

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def _echo(request: AMLRequest):
    return {
        "method": request.method,
        "data": request.get_data(False).decode("utf-8"),
        "args": {k: request.args.getlist(k) for k in request.args},
        "full_path": request.full_path,
        "path": request.path,
        "content_type": request.headers.get("Content-Type"),
        "custom": request.headers.get("X-Custom"),
    }


def _stream():
    yield "chunk-1;"
    yield "chunk-2;"
    yield "chunk-3"


@rawhttp
def run(request):
    case = request.args.get("case")
    if case is None:
        if request.method == "GET":
            return request.full_path
        if request.method == "POST":
            return _echo(request)
        return AMLResponse("bad request", 500)
    if case == "echo":
        return _echo(request)
    if case == "json":
        return {"json": request.json, "get_json": request.get_json(), "is_json": request.is_json}
    if case == "files":
        files = {
            name: {"filename": f.filename, "content": f.read().decode("utf-8")}
            for name, f in request.files.items()
        }
        return {"files": files, "form": request.form.to_dict()}
    if case == "form":
        return {"form": request.form.to_dict(flat=False)}
    if case == "text":
        return AMLResponse("hello text", 200)
    if case == "json_str":
        return AMLResponse({"a": 1, "b": [1, 2]}, 200, json_str=True)
    if case == "none":
        return AMLResponse(None, 202)
    if case == "custom":
        return AMLResponse(
            "created", 201, {"X-Multi": "a, b,c", "Content-Type": "text/plain", "X-Single": "one"}
        )
    if case == "bytes":
        return AMLResponse(b"\x00\x01\xfe\xff", 200, {"Content-Type": "application/octet-stream"})
    if case == "stream":
        return AMLResponse(_stream(), 200)
    if case == "fail503":
        return AMLResponse("service unavailable", 503)
    if case == "fail500_flag_false":
        return AMLResponse("oops", 500, run_function_failed=False)
    if case == "flag_true_200":
        return AMLResponse("ok", 200, run_function_failed=True)
    if case == "override_request_id":
        return AMLResponse("mine", 200, {"x-request-id": "from-user-code"})
    if case == "raise":
        raise RuntimeError("raw boom")
    return AMLResponse(f"unknown case {case}", 400)
