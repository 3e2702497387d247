"""The JSON body of a control-plane request, or a 400 naming what is wrong with it."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from modelhost.errors import ValidationError

__all__ = ["json_body"]


async def json_body(request: Request) -> Any:
    """The decoded body (None when empty); ValidationError (400) when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}") from exc
