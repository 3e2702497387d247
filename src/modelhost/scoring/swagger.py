"""Swagger 2, OpenAPI 3.0 and 3.1 documents for ``/swagger.json``, as
azureml-inference-server-http 1.5.1 builds them.

Per version, a user file in the app root wins (v2: ``swagger.json`` then ``swagger2.json``; v3:
``swagger3.json``; 3.1: ``swagger3.1.json``); otherwise the document is generated from v1's templates
(shipped in ``_templates/``) with ``ServiceInput``/``ServiceOutput`` taken from inference-schema's
decorators (``{"type": "object", "example": {}}`` for an undecorated run). A version the decorators
do not support (swagger 2 cannot describe mixed-type arrays) is not produced. Documents are serialized
once, at start-up.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SwaggerDocs", "SwaggerError", "build_swagger_docs", "generate_swagger"]

logger = logging.getLogger("azmlinfsrv.swagger")
_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_templates")


class SwaggerError(Exception):
    """The requested version is unknown or not available (v1 answers 404 with this message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Builder:
    version: str
    aliases: frozenset[str]
    template: str
    user_files: tuple[str, ...]
    section: tuple[str, ...]
    openapi: str | None = None


_BUILDERS = (
    _Builder(
        "2",
        frozenset({"2", "2.0"}),
        "swagger2_template.json",
        ("swagger.json", "swagger2.json"),
        ("definitions",),
    ),
    _Builder(
        "3", frozenset({"3", "3.0"}), "swagger3_template.json", ("swagger3.json",), ("components", "schemas")
    ),
    _Builder(
        "3.1",
        frozenset({"3.1"}),
        "swagger3_template.json",
        ("swagger3.1.json",),
        ("components", "schemas"),
        openapi="3.1.0",
    ),
)
_VALID = frozenset(alias for b in _BUILDERS for alias in b.aliases)


@dataclass(frozen=True)
class SwaggerDocs:
    """The serialized documents by version alias, and the versions available for this script."""

    documents: Mapping[str, bytes]
    supported: tuple[str, ...]

    def get(self, version: str) -> bytes:
        """The document for ``?version=`` (default ``"2"``); :class:`SwaggerError` with v1's message."""
        supported = ", ".join(sorted(self.supported))
        if version not in _VALID:
            raise SwaggerError(
                f"Swagger version [{version}] is not valid. Supported versions: [{supported}]."
            )
        document = self.documents.get(version)
        if document is None:
            raise SwaggerError(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
        return document


def generate_swagger(
    version: str,
    input_schema: Any,
    output_schema: Any,
    *,
    service_name: str,
    service_version: str,
    path_prefix: str,
) -> dict[str, Any]:
    """Fill v1's template for ``version`` ("2", "3" or "3.1") with the schemas (reads the template)."""
    builder = next(b for b in _BUILDERS if b.version == version)
    with open(os.path.join(_TEMPLATES, builder.template), encoding="utf-8") as handle:
        text = handle.read()
    prefix = f"/{path_prefix.strip('/')}" if path_prefix else ""
    text = (
        text.replace("$SERVICE_NAME$", service_name)
        .replace("$SERVICE_VERSION$", service_version)
        .replace("$PATH_PREFIX$", prefix)
    )
    spec: dict[str, Any] = json.loads(text)
    section = spec
    for key in builder.section:
        section = section[key]
    section["ServiceInput"] = input_schema
    section["ServiceOutput"] = output_schema
    if builder.openapi:
        spec["openapi"] = builder.openapi
    return spec


def _read_user_file(app_root: str, name: str, version: str) -> Any:
    path = os.path.join(app_root, name)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    logger.info(f"Loaded user's swagger file for version [{version}] from {path}")
    return data


def build_swagger_docs(
    run: Callable[..., Any], *, app_root: str, service_name: str, service_version: str, path_prefix: str
) -> SwaggerDocs:
    """Build every version's document for this ``run`` (at start-up) and log what was prepared, as v1 does."""
    from inference_schema.schema_util import (
        get_input_schema,
        get_output_schema,
        get_supported_versions,
        is_schema_decorated,
    )

    documents: dict[str, bytes] = {}
    supported: list[str] = []
    skipped: list[str] = []
    decorated = is_schema_decorated(run)
    schema_versions = set(get_supported_versions(run))
    for builder in _BUILDERS:
        doc = None
        for name in builder.user_files:
            doc = _read_user_file(app_root, name, builder.version)
            if doc:
                break
        if not doc and builder.aliases & schema_versions:
            if decorated:
                in_schema, out_schema = get_input_schema(run), get_output_schema(run)
            else:
                in_schema = out_schema = {"type": "object", "example": {}}
            doc = generate_swagger(
                builder.version,
                in_schema,
                out_schema,
                service_name=service_name,
                service_version=service_version,
                path_prefix=path_prefix,
            )
        if doc:
            body = json.dumps(doc).encode("utf-8")
            for alias in builder.aliases:
                documents[alias] = body
            supported.append(builder.version)
        else:
            skipped.append(builder.version)
    supported.sort()
    skipped.sort()
    if supported and skipped:
        logger.info(
            f"Swaggers are prepared for versions [{', '.join(supported)}] "
            f"and skipped for versions [{', '.join(skipped)}]."
        )
    elif supported:
        logger.info(f"Swaggers are prepared for the following versions: [{', '.join(supported)}].")
    else:
        logger.info("No swagger is prepared.")
    return SwaggerDocs(documents=documents, supported=tuple(supported))
