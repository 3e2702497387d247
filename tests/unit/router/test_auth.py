"""Key verdicts: both keys, wrong key, missing/malformed header, auth disabled."""

from __future__ import annotations

import pytest

from modelhost.router.auth import Verdict, bearer_forms, check_admin_token, check_key

KEYS = (b"primary-key", b"secondary-key")


@pytest.mark.parametrize(
    ("header", "keys", "enabled", "verdict"),
    [
        pytest.param(b"Bearer primary-key", KEYS, True, Verdict.ALLOWED, id="primary"),
        pytest.param(b"Bearer secondary-key", KEYS, True, Verdict.ALLOWED, id="secondary"),
        pytest.param(b"bearer  primary-key ", KEYS, True, Verdict.ALLOWED, id="scheme-case-and-spaces"),
        pytest.param(b"Bearer primary-keyx", KEYS, True, Verdict.WRONG_KEY, id="longer"),
        pytest.param(b"Bearer primary", KEYS, True, Verdict.WRONG_KEY, id="prefix"),
        pytest.param(None, KEYS, True, Verdict.MISSING, id="missing"),
        pytest.param(b"primary-key", KEYS, True, Verdict.MALFORMED, id="no-scheme"),
        pytest.param(b"Basic primary-key", KEYS, True, Verdict.MALFORMED, id="basic"),
        pytest.param(b"Bearer ", KEYS, True, Verdict.MALFORMED, id="empty-token"),
        pytest.param(b"Bearer x", (), True, Verdict.NO_KEYS, id="no-keys-configured"),
        pytest.param(None, KEYS, False, Verdict.OPEN, id="disabled-no-header"),
        pytest.param(b"Bearer wrong", KEYS, False, Verdict.OPEN, id="disabled-wrong-key"),
    ],
)
def test_verdicts(header: bytes | None, keys: tuple[bytes, ...], enabled: bool, verdict: Verdict) -> None:
    result = check_key(header, keys, enabled=enabled)
    assert result is verdict
    assert check_key(header, keys, enabled=enabled, bearers=bearer_forms(keys)) is verdict  # fast path agrees
    assert result.allowed is (verdict in (Verdict.ALLOWED, Verdict.OPEN))


def test_refusals_carry_a_message() -> None:
    for verdict in Verdict:
        if not verdict.allowed:
            assert "Authorization" in verdict.message or "key" in verdict.message


@pytest.mark.parametrize(
    ("header", "ok"),
    [(b"Bearer adm", True), (b"Bearer adm2", False), (None, False), (b"adm", False)],
)
def test_admin_token(header: bytes | None, ok: bool) -> None:
    assert check_admin_token(header, b"adm") is ok
