"""The control plane on PostgreSQL: the same client calls work when the store is a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.sdk import Environment, Model, Workspace
from tests.e2e.control.conftest import Home
from tests.store.conftest import fresh_postgres_schema


@pytest.mark.postgres
def test_models_and_environments_on_postgresql(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_postgres_schema() as url:
        monkeypatch.setenv("MODELHOST_DATABASE_URL", url)
        home.env["MODELHOST_DATABASE_URL"] = url
        try:
            ws = Workspace()
            assert ws.get_details()["database"].startswith("postgresql+psycopg://modelhost:***@")
            model_file = tmp_path / "m.bin"
            model_file.write_bytes(b"pg model")
            assert Model.register(ws, model_file, "pg-model").version == 1
            assert Model.register(ws, model_file, "pg-model").version == 2
            assert [m.id for m in Model.list(ws, name="pg-model", latest=True)] == ["pg-model:2"]
            result = Environment.from_current("pg-env").build(ws).wait_for_completion()
            assert result["source"] == "inherited"
            listing = home.cli("model", "list", "--name", "pg-model")
            assert listing.returncode == 0 and "pg-model" in listing.stdout
            ws.close()
        finally:
            home.stop()
