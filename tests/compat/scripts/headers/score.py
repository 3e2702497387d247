"""run() that declares request_headers: the server passes dict(request.headers) by name."""


def init():
    pass


def run(data, request_headers):
    return {"data": data, "headers": request_headers}
