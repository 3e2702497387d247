"""Behaviour switched on by environment: SCORING_TIMEOUT_MS and AML_CORS_ORIGINS."""

from __future__ import annotations

import json

import pytest

from tests.compat.harness import (
    HTML,
    Server,
    ServerSpec,
    app_level_headers,
    blueprint_headers,
    expect,
    message,
    run_failed,
    score_ok,
)

pytestmark = pytest.mark.compat

ALLOWED = "http://allowed.example"
ALSO = "http://also.example"
EVIL = "http://evil.example"
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


class TestScoringTimeout:
    SERVER = ServerSpec("undecorated", env=(("SCORING_TIMEOUT_MS", "300"),))

    def test_run_past_timeout_is_500(self, server: Server) -> None:
        reply = server.post_json("/score", {"mode": "sleep", "seconds": 1.5})
        expect(reply, status=500, headers=run_failed(), body=message("Scoring timeout after 300 ms"))

    def test_serves_after_timeout(self, server: Server) -> None:
        server.post_json("/score", {"mode": "sleep", "seconds": 1.0})
        reply = server.post_json("/score", {"mode": "list"})
        expect(reply, status=200, headers=score_ok(), body="[1, 2, 3]")

    def test_run_within_timeout_succeeds(self, server: Server) -> None:
        reply = server.post_json("/score", {"mode": "sleep", "seconds": 0.05})
        expect(reply, status=200, headers=score_ok(), body='{"slept": 0.05}')


class TestCors:
    # Two origins (with a space, as users write them): v1 strips each entry.
    SERVER = ServerSpec("undecorated", env=(("AML_CORS_ORIGINS", f"{ALSO}, {ALLOWED}"),))

    def test_allowed_origin_post(self, server: Server) -> None:
        reply = server.post_json("/score", {"mode": "list"}, headers={"Origin": ALLOWED})
        expect(reply, status=200, headers=score_ok(access_control_allow_origin=ALLOWED), body="[1, 2, 3]")
        assert reply.all("Vary") == ["Origin"]

    def test_allowed_origin_get_and_error(self, server: Server) -> None:
        reply = server.get("/score?q=1", headers={"Origin": ALSO})
        expect(reply, status=200, headers=score_ok(access_control_allow_origin=ALSO),
               body=json.dumps({"received": '{"q": 1}', "type": "str"}))
        reply = server.post_json("/score", {"mode": "raise"}, headers={"Origin": ALLOWED})
        expect(reply, status=500, headers=run_failed(access_control_allow_origin=ALLOWED),
               body=message(RUN_FAILED))

    def test_origin_match_is_case_insensitive(self, server: Server) -> None:
        reply = server.post_json("/score", {"mode": "list"}, headers={"Origin": "HTTP://ALLOWED.EXAMPLE"})
        expect(reply, status=200, headers=score_ok(access_control_allow_origin="HTTP://ALLOWED.EXAMPLE"),
               body="[1, 2, 3]")

    def test_other_origin_gets_no_cors_header(self, server: Server) -> None:
        reply = server.post_json("/score", {"mode": "list"}, headers={"Origin": EVIL})
        expect(reply, status=200, headers=score_ok(), body="[1, 2, 3]")
        assert reply.all("Vary") == []

    def test_no_origin_gets_first_configured_origin(self, server: Server) -> None:
        # flask-cors' always_send: without an Origin header v1 sends the alphabetically first origin.
        reply = server.post_json("/score", {"mode": "list"})
        expect(reply, status=200, headers=score_ok(access_control_allow_origin=ALLOWED), body="[1, 2, 3]")

    def test_preflight_allowed(self, server: Server) -> None:
        reply = server.request("OPTIONS", "/score", headers={
            "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-foo, content-type"})
        expect(reply, status=200, body=b"", headers=score_ok(
            exec_ms=False, content_type=HTML, access_control_allow_origin=ALLOWED))
        assert reply.all("Access-Control-Allow-Methods") == ["GET, POST"]
        assert reply.all("Access-Control-Allow-Headers") == ["content-type, x-foo"]
        assert reply.all("Vary") == ["Origin"]

    def test_preflight_disallowed_method(self, server: Server) -> None:
        reply = server.request("OPTIONS", "/score", headers={
            "Origin": ALLOWED, "Access-Control-Request-Method": "PUT"})
        expect(reply, status=200, body=b"", headers=score_ok(
            exec_ms=False, content_type=HTML, access_control_allow_origin=ALLOWED))
        assert reply.all("Access-Control-Allow-Methods") == []

    def test_preflight_other_origin(self, server: Server) -> None:
        reply = server.request("OPTIONS", "/score", headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST"})
        expect(reply, status=200, body=b"", headers=score_ok(exec_ms=False, content_type=HTML))
        assert reply.all("Access-Control-Allow-Methods") == []

    def test_health_and_swagger_carry_cors(self, server: Server) -> None:
        reply = server.get("/", headers={"Origin": ALLOWED})
        expect(reply, status=200, body="Healthy", headers=blueprint_headers(
            content_type=HTML, failed=None, access_control_allow_origin=ALLOWED))
        reply = server.get("/swagger.json", headers={"Origin": ALLOWED})
        expect(reply, status=200, check_body=False,
               headers=blueprint_headers(access_control_allow_origin=ALLOWED))

    def test_unknown_path_has_no_cors(self, server: Server) -> None:
        reply = server.get("/nope", headers={"Origin": ALLOWED})
        assert reply.status == 404
        expect(reply, status=404, check_body=False, headers=app_level_headers())
