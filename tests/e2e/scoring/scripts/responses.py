"""AMLResponse variants: plain str, json_str, repeated headers, and a streaming generator."""

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    if data == "plain":
        return AMLResponse("hello", 200)
    if data == "json":
        return AMLResponse({"a": [1, 2]}, 202, json_str=True)
    if data == "headers":
        return AMLResponse("x", 200, {"X-Multi": "a, b,c", "Content-Type": "text/plain"})
    if data == "stream":

        def chunks():
            for i in range(3):
                yield f"chunk{i}\n"

        return AMLResponse(chunks(), 200, {"Content-Type": "text/plain"})
    return AMLResponse(None, 200)
