"""v1's user-facing texts for services, as pure functions (the SDK's unit tests pin them)."""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "bad_response",
    "deployment_failed",
    "deployment_finished",
    "deployment_timed_out",
    "no_operation",
    "not_ready",
]


def deployment_finished(compute_type: str) -> str:
    """The line v1 prints when ``wait_for_deployment`` ends well."""
    return f'{compute_type} service creation operation finished, operation "Succeeded"'


def deployment_failed(state: str | None, operation_id: str, logs_hint: str, error: object) -> str:
    """v1's ``WebserviceException`` text for an operation that ended other than ``Succeeded``.

    v1 shows ``StatusCode``/``Message`` when the error has both, else the error as indented JSON.
    """
    if isinstance(error, Mapping) and "statusCode" in error and "message" in error:
        shown = f"StatusCode: {error['statusCode']}\nMessage: {error['message']}"
    else:
        shown = json.dumps(error, indent=2, default=str)
    return (
        "Service deployment polling reached non-successful terminal state, current service state: "
        f"{state}\nOperation ID: {operation_id}\n{logs_hint}\nError:\n{shown}"
    )


def deployment_timed_out(timeout_s: float, state: str) -> str:
    return f"Deployment polling exceeded timeout override of {timeout_s}s. Current status: {state}"


def no_operation(state: str | None) -> str:
    return f"Long running operation information not known, unable to poll. Current state is {state}"


def not_ready(state: str | None, error: object) -> str:
    """v1's ``run()`` text when the service has no scoring URI."""
    return (
        "Error attempting to call webservice, scoring_uri unavailable. This could be due to a failed "
        f"deployment, or the service is not ready yet.\nCurrent State: {state}\nErrors: {error}"
    )


def bad_response(status_code: int, headers: Mapping[str, str], content: bytes) -> str:
    """v1's ``run()`` text for a non-200 answer."""
    return (
        "Received bad response from service. More information can be found by calling `.get_logs()` on "
        f"the webservice object.\nResponse Code: {status_code}\nHeaders: {dict(headers)}\n"
        f"Content: {content!r}"
    )
