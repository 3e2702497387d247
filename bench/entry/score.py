"""The benchmark's entry script: as cheap as a run() can be, so the server's overhead dominates."""


def init():
    pass


def run(data):
    return {"result": len(data)}
