"""@rawhttp run(): reads the request object the way v1 scripts do."""

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    assert isinstance(request, AMLRequest)
    kind = request.args.get("kind", "info")
    if kind == "info":
        return {
            "method": request.method,
            "path": request.path,
            "full_path": request.full_path,
            "args": {k: request.args.getlist(k) for k in request.args},
            "form": {k: request.form.getlist(k) for k in request.form},
            "files": {k: [f.filename, f.read().decode()] for k, f in request.files.items()},
            "data": request.get_data(as_text=True) if not request.files else "",
            "json": request.get_json(silent=True),
            "is_json": request.is_json,
            "header": request.headers.get("X-Custom"),
            "url": request.url,
        }
    if kind == "bytes":
        return AMLResponse(request.get_data(), 201, {"Content-Type": "application/octet-stream"})
    if kind == "teapot":
        return AMLResponse("short and stout", 418)
    if kind == "unavailable":
        return AMLResponse("try later", 503)
    return AMLResponse(request.full_path, 200)
