"""Azure ML v1 name rules (``azureml/_model_management/_util.py``) as pure functions.

* model name: ``^[a-zA-Z0-9][a-zA-Z0-9\\-\\._]{0,254}$``; model id ``"<name>:<version>"``, version >= 1;
* service name: ``^[a-z]([-a-z0-9]*[a-z0-9])?$`` and 3..32 characters.

Every function raises :class:`~modelhost.errors.ValidationError` quoting the offending value and the rule.
"""

from __future__ import annotations

import re

from modelhost.errors import ValidationError

__all__ = [
    "MODEL_NAME_PATTERN",
    "SERVICE_NAME_MAX",
    "SERVICE_NAME_MIN",
    "SERVICE_NAME_PATTERN",
    "format_model_id",
    "parse_model_id",
    "validate_model_name",
    "validate_model_version",
    "validate_service_name",
]

MODEL_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$"
SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
SERVICE_NAME_MIN = 3
SERVICE_NAME_MAX = 32

# fullmatch on the bare pattern: '$' alone would also accept a trailing newline.
_MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN[1:-1])
_SERVICE_NAME_RE = re.compile(SERVICE_NAME_PATTERN[1:-1])


def validate_model_name(name: object) -> None:
    """Accept a v1 model name or raise ``ValidationError`` naming it and the rule."""
    if not isinstance(name, str) or _MODEL_NAME_RE.fullmatch(name) is None:
        raise ValidationError(
            f"Invalid model name {name!r}: a model name must match {MODEL_NAME_PATTERN}",
            hint="Start with a letter or digit, then use at most 254 letters, digits, '-', '.' or '_'.",
        )


def validate_model_version(version: object) -> int:
    """Return ``version`` if it is a model version (an int >= 1), else raise ``ValidationError``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(
            f"Invalid model version {version!r}: a model version is an integer >= 1",
            hint="Pass the version number shown by 'modelhost model list'.",
        )
    return version


def validate_service_name(name: object) -> None:
    """Accept a v1 service name or raise ``ValidationError`` with v1's wording, naming the value."""
    ok = (
        isinstance(name, str)
        and SERVICE_NAME_MIN <= len(name) <= SERVICE_NAME_MAX
        and _SERVICE_NAME_RE.fullmatch(name) is not None
    )
    if not ok:
        raise ValidationError(
            f"Error, provided service name {name!r} is invalid. It must only consist of lowercase letters, "
            f"numbers, or dashes, start with a letter, end with a letter or number, and be between "
            f"{SERVICE_NAME_MIN} and {SERVICE_NAME_MAX} characters long ({SERVICE_NAME_PATTERN}).",
            hint="Choose a name like 'my-service-1'.",
        )


def parse_model_id(model_id: str) -> tuple[str, int | None]:
    """Split ``"name"`` or ``"name:version"`` into ``(name, version or None)``, validating both parts."""
    if not isinstance(model_id, str):
        raise ValidationError(f"Invalid model id {model_id!r}: expected 'name' or 'name:version'")
    name, sep, raw_version = model_id.partition(":")
    validate_model_name(name)
    if not sep:
        return name, None
    if not raw_version.isascii() or not raw_version.isdigit() or int(raw_version) < 1:
        raise ValidationError(
            f"Invalid model id {model_id!r}: the version after ':' must be an integer >= 1",
            hint="Write the id as 'name:version', e.g. 'my-model:3'.",
        )
    return name, int(raw_version)


def format_model_id(name: str, version: int) -> str:
    """The v1 model id ``"<name>:<version>"``."""
    return f"{name}:{version}"
