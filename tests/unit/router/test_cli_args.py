"""The router's command line takes any admin token, including one that starts with '-'.

``secrets.token_urlsafe`` starts a token with '-' one time in 64; the control plane passes it as
``--admin-token=<token>`` so argparse cannot mistake it for an option (a CI run once lost its router
that way).
"""

from __future__ import annotations

import secrets

import pytest

from modelhost.router.__main__ import parse_args


@pytest.mark.parametrize("token", ["-leading-dash", "--double", secrets.token_urlsafe(32)])
def test_admin_token_in_equals_form_survives_parsing(token: str) -> None:
    config = parse_args(["--port", "8791", f"--admin-token={token}"])
    assert config.admin_token == token
