"""CORS decisions as flask-cors makes them for v1."""

from __future__ import annotations

from modelhost.scoring.cors import CorsPolicy


def _h(
    policy: CorsPolicy,
    origin: str | None,
    method: str = "POST",
    acrm: str | None = None,
    acrh: str | None = None,
) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in policy.headers(origin, method, acrm, acrh)}


def test_allowed_origin_is_echoed_with_vary_when_several_are_configured() -> None:
    policy = CorsPolicy(["http://b.com", "http://a.com"])
    assert _h(policy, "http://A.com") == {"access-control-allow-origin": "http://A.com", "vary": "Origin"}
    assert _h(policy, "http://evil.com") == {}
    assert _h(policy, None) == {"access-control-allow-origin": "http://a.com", "vary": "Origin"}


def test_single_origin_has_no_vary() -> None:
    assert _h(CorsPolicy(["http://a.com"]), "http://a.com") == {"access-control-allow-origin": "http://a.com"}


def test_preflight() -> None:
    policy = CorsPolicy(["http://a.com"])
    assert _h(policy, "http://a.com", "OPTIONS", "post", "x-foo, content-type") == {
        "access-control-allow-origin": "http://a.com",
        "access-control-allow-headers": "content-type, x-foo",
        "access-control-allow-methods": "GET, POST",
    }
    assert "access-control-allow-methods" not in _h(policy, "http://a.com", "OPTIONS", "PUT")


def test_wildcard_and_patterns() -> None:
    assert _h(CorsPolicy(["*"]), "http://x.org") == {
        "access-control-allow-origin": "http://x.org",
        "vary": "Origin",
    }
    assert _h(CorsPolicy(["*"]), None) == {"access-control-allow-origin": "*"}
    assert _h(CorsPolicy([r"http://.*\.example\.com"]), "http://api.example.com")["vary"] == "Origin"
