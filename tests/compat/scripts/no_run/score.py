"""No run(): the server must not come up."""


def init():
    pass
