"""run() reports which heavy or forbidden modules the scoring worker process has imported."""

import sys

WATCH = (
    "sqlalchemy",
    "kubernetes",
    "httpx",
    "typer",
    "rich",
    "numpy",
    "pandas",
    "flask",
    "alembic",
    "prometheus_client",
    "jwt",
    "cryptography",
)


def init():
    pass


def run(data):
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in WATCH)
    own = sorted(name for name in sys.modules if name.startswith("modelhost"))
    return {"watched": loaded, "modelhost": own}
