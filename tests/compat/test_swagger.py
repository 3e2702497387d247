"""GET /swagger.json: generated documents (versions 2, 3, 3.1), version errors, user-provided files.

Generated documents are compared with golden files captured from azmlinfsrv 1.5.1 (the azmlinfsrv
parametrization re-checks them on every run). To recapture after changing an entry script:
``MODELHOST_COMPAT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/compat/test_swagger.py -k azmlinfsrv``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.compat.harness import SCRIPTS, Reply, Server, ServerSpec, blueprint_headers, expect, message

pytestmark = pytest.mark.compat

GOLDEN = Path(__file__).parent / "golden"
VALID = ["2", "2.0", "3", "3.0", "3.1"]


def check_swagger(reply: Reply, golden_name: str) -> None:
    expect(reply, status=200, headers=blueprint_headers(), check_body=False)
    path = GOLDEN / golden_name
    if reply.kind == "azmlinfsrv" and os.environ.get("MODELHOST_COMPAT_UPDATE_GOLDEN"):
        path.write_text(json.dumps(reply.json(), indent=2, sort_keys=True) + "\n")
    assert reply.json() == json.loads(path.read_text()), f"{reply.kind} differs from {path.name}"


def golden_for(version: str) -> str:
    return {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}[version]


class TestUndecorated:
    SERVER = ServerSpec("undecorated")

    def test_default_is_version_2(self, server: Server) -> None:
        check_swagger(server.get("/swagger.json"), "undecorated-2.json")

    @pytest.mark.parametrize("version", VALID)
    def test_versions(self, server: Server, version: str) -> None:
        check_swagger(server.get(f"/swagger.json?version={version}"),
                      f"undecorated-{golden_for(version)}.json")

    @pytest.mark.parametrize("version", ["4", "3.2", "v2", "", "2.00"])
    def test_invalid_version_is_404(self, server: Server, version: str) -> None:
        reply = server.get(f"/swagger.json?version={version}")
        expect(reply, status=404, headers=blueprint_headers(),
               body=message(f"Swagger version [{version}] is not valid. Supported versions: [2, 3, 3.1]."))

    def test_request_ids_on_swagger(self, server: Server) -> None:
        reply = server.get("/swagger.json", headers={"x-request-id": "sw-1", "x-ms-client-request-id": "c"})
        expect(reply, status=200, check_body=False, headers=blueprint_headers(
            request_id="sw-1", ms_request_id="c", client_request_id="c"))


class TestServiceSettings:
    SERVER = ServerSpec("undecorated", env=(
        ("SERVICE_NAME", "my-svc"), ("SERVICE_VERSION", "7.1"),
        ("SERVICE_PATH_PREFIX", "/api/v1/service/my-svc/")))

    @pytest.mark.parametrize("version", ["2", "3"])
    def test_name_version_and_prefix(self, server: Server, version: str) -> None:
        check_swagger(server.get(f"/swagger.json?version={version}"), f"service-settings-{version}.json")


class TestDecorated:
    SERVER = ServerSpec("schema")

    @pytest.mark.parametrize("version", VALID)
    def test_versions(self, server: Server, version: str) -> None:
        check_swagger(server.get(f"/swagger.json?version={version}"), f"schema-{golden_for(version)}.json")


class TestMixedTypes:
    SERVER = ServerSpec("schema_mixed")

    @pytest.mark.parametrize("path", ["/swagger.json", "/swagger.json?version=2",
                                      "/swagger.json?version=2.0"])
    def test_version_2_unsupported(self, server: Server, path: str) -> None:
        version = path.partition("=")[2] or "2"
        reply = server.get(path)
        expect(reply, status=404, headers=blueprint_headers(), body=message(
            f"Swagger version [{version}] is not supported for the scoring script. "
            "Supported swagger versions: [3, 3.1]."))

    def test_invalid_lists_supported_versions_only(self, server: Server) -> None:
        reply = server.get("/swagger.json?version=9")
        expect(reply, status=404, headers=blueprint_headers(),
               body=message("Swagger version [9] is not valid. Supported versions: [3, 3.1]."))

    @pytest.mark.parametrize("version", ["3", "3.1"])
    def test_version_3(self, server: Server, version: str) -> None:
        check_swagger(server.get(f"/swagger.json?version={version}"), f"schema-mixed-{version}.json")


def user_file(script: str, name: str) -> object:
    return json.loads((SCRIPTS / script / name).read_text())


class TestUserFiles:
    SERVER = ServerSpec("user_swagger")

    @pytest.mark.parametrize(("query", "name"), [
        ("", "swagger.json"), ("?version=2", "swagger.json"), ("?version=2.0", "swagger.json"),
        ("?version=3", "swagger3.json"), ("?version=3.0", "swagger3.json"),
        ("?version=3.1", "swagger3.1.json"),
    ])
    def test_user_file_served(self, server: Server, query: str, name: str) -> None:
        reply = server.get(f"/swagger.json{query}")
        expect(reply, status=200, headers=blueprint_headers(), json_body=user_file("user_swagger", name))


class TestUserSwagger2File:
    SERVER = ServerSpec("user_swagger2")

    def test_swagger2_json_used_for_version_2(self, server: Server) -> None:
        reply = server.get("/swagger.json?version=2")
        expect(reply, status=200, headers=blueprint_headers(),
               json_body=user_file("user_swagger2", "swagger2.json"))

    def test_version_3_still_generated(self, server: Server) -> None:
        check_swagger(server.get("/swagger.json?version=3"), "undecorated-3.json")
