"""Undecorated script next to user-provided swagger files (the server must serve those files)."""


def init():
    pass


def run(data):
    return {"received": data}
