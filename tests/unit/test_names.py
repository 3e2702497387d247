"""v1 name rules (modelhost.spec.names), table-driven."""

from __future__ import annotations

import pytest

from modelhost.errors import ValidationError
from modelhost.spec.names import (
    MODEL_NAME_PATTERN,
    format_model_id,
    parse_model_id,
    validate_model_name,
    validate_model_version,
    validate_service_name,
)


@pytest.mark.parametrize(
    "name",
    ["m", "M", "0", "sklearn-model", "my_model.v2", "a" * 255, "A-._", "9lives"],
    ids=[
        "one-letter",
        "upper",
        "digit",
        "dashes",
        "dot-underscore",
        "255-chars",
        "punct-after-first",
        "digit-first",
    ],
)
def test_valid_model_names(name: str) -> None:
    validate_model_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "-m", ".m", "_m", "a" * 256, "my model", "m:1", "m/1", "modèle", "m\n", "m$", 3, None],
    ids=[
        "empty",
        "dash-first",
        "dot-first",
        "underscore-first",
        "256-chars",
        "space",
        "colon",
        "slash",
        "non-ascii",
        "trailing-newline",
        "dollar",
        "int",
        "none",
    ],
)
def test_invalid_model_names_quote_the_name_and_the_rule(name: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_model_name(name)
    assert repr(name) in caught.value.message
    assert MODEL_NAME_PATTERN in caught.value.message


@pytest.mark.parametrize("name", ["abc", "my-service", "a12", "a" * 32, "s-1-x"])
def test_valid_service_names(name: str) -> None:
    validate_service_name(name)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 33, "My-service", "1abc", "abc-", "-abc", "ab_c", "ab.c", "abc\n", "", None],
    ids=[
        "too-short",
        "too-long",
        "upper",
        "digit-first",
        "dash-last",
        "dash-first",
        "underscore",
        "dot",
        "trailing-newline",
        "empty",
        "none",
    ],
)
def test_invalid_service_names(name: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_service_name(name)
    message = caught.value.message
    assert message.startswith("Error, provided service name")
    assert repr(name) in message
    assert "between 3 and 32 characters" in message


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [("m", ("m", None)), ("m:1", ("m", 1)), ("my.model-2:17", ("my.model-2", 17)), ("m:007", ("m", 7))],
)
def test_parse_model_id(model_id: str, expected: tuple[str, int | None]) -> None:
    assert parse_model_id(model_id) == expected


@pytest.mark.parametrize(
    "model_id",
    ["m:", "m:0", "m:-1", "m:x", "m:1:2", ":1", "-m:1", "m: 1", "m:\u0661"],
    ids=[
        "empty-version",
        "zero",
        "negative",
        "word",
        "two-colons",
        "no-name",
        "bad-name",
        "space",
        "arabic-digit",
    ],
)
def test_parse_model_id_rejects(model_id: str) -> None:
    with pytest.raises(ValidationError):
        parse_model_id(model_id)


def test_format_model_id_round_trips() -> None:
    assert parse_model_id(format_model_id("m", 3)) == ("m", 3)


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "1", None])
def test_validate_model_version_rejects(version: object) -> None:
    with pytest.raises(ValidationError):
        validate_model_version(version)


def test_validate_model_version_returns_the_version() -> None:
    assert validate_model_version(4) == 4
