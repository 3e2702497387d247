"""The router reads its admin token from a file, so it never shows on its command line (docs/security.md)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from modelhost.router.__main__ import parse_args


def test_admin_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    token = "-" + secrets.token_urlsafe(32)  # a leading '-' is no problem in a file
    path = tmp_path / "admin.token"
    path.write_text(token + "\n")
    config = parse_args(["--admin-token-file", str(path)])
    assert config.admin_token == token


@pytest.mark.parametrize(("content", "words"), [(None, "No such file"), ("\n", "is empty")],
                         ids=["missing", "empty"])  # fmt: skip
def test_unusable_admin_token_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, words: str
) -> None:
    path = tmp_path / "admin.token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as info:
        parse_args(["--admin-token-file", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--admin-token-file {path}" in err and words in err
