"""The one exception tree of modelhost.

Every error a user can meet is a ``ModelhostError``. Each class knows the HTTP status the control
plane answers with, a stable machine-readable ``code`` and a ``hint`` naming the fix, so the API,
the SDK and the CLI all say the same thing::

    ModelhostError                      500 internal
    ├── ValidationError                 400 invalid_input     bad names, specs, configuration
    │   └── EntryScriptError            400 entry_script      missing or unparseable score.py
    ├── AuthenticationError             401 unauthenticated
    ├── NotFoundError                   404 not_found
    │   └── ModelNotFoundError          404 model_not_found
    ├── ConflictError                   409 conflict          name taken, operation running, in use
    ├── PayloadTooLargeError            413 payload_too_large
    ├── EnvironmentBuildError           422 environment_build  a build that failed, with its log
    ├── DeploymentFailedError           400 deployment_failed  replicas crashed or never became ready
    ├── StoreUnavailableError           503 store_unavailable  database cannot be reached
    └── ControlPlaneUnavailableError    503 control_plane_unavailable

Lower layers translate their own exceptions at the seam with ``raise ... from exc``. The SDK turns
an error response back into the same class with :func:`from_payload`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ControlPlaneUnavailableError",
    "DeploymentFailedError",
    "EntryScriptError",
    "EnvironmentBuildError",
    "ModelNotFoundError",
    "ModelhostError",
    "NotFoundError",
    "PayloadTooLargeError",
    "StoreUnavailableError",
    "ValidationError",
    "from_payload",
]


class ModelhostError(Exception):
    """Base of every modelhost error: a message, a hint naming the fix, an HTTP status and a code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    default_hint: ClassVar[str] = "This is a bug in modelhost; please report it with the control plane's log."

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details = list(details or [])

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and the hint on one line, as the CLI prints it."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_payload(self) -> dict[str, Any]:
        """The JSON body the control plane sends for this error."""
        body = {"code": self.code, "message": self.message, "hint": self.hint, "details": self.details}
        return {"error": body}


class ValidationError(ModelhostError):
    status_code = 400
    code = "invalid_input"
    default_hint = "Correct the value named in the message and try again."


class EntryScriptError(ValidationError):
    code = "entry_script"
    default_hint = "Fix the entry script (it must exist in the source directory and be valid Python)."


class AuthenticationError(ModelhostError):
    status_code = 401
    code = "unauthenticated"
    default_hint = "Send 'Authorization: Bearer <token>' with the workspace's admin token."


class NotFoundError(ModelhostError):
    status_code = 404
    code = "not_found"
    default_hint = "Check the name and version; list what exists with the matching 'list' command."


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"
    default_hint = "List registered models with 'modelhost model list'."


class ConflictError(ModelhostError):
    status_code = 409
    code = "conflict"
    default_hint = "Wait for the running operation to finish, or remove what stands in the way."


class PayloadTooLargeError(ModelhostError):
    status_code = 413
    code = "payload_too_large"
    default_hint = "Send a smaller request."


class EnvironmentBuildError(ModelhostError):
    status_code = 422
    code = "environment_build"
    default_hint = "Read the build log ('modelhost env show <name>') and fix the requirement it names."


class DeploymentFailedError(ModelhostError):
    """The runtime gave up on a service's replicas (v1's CrashLoopBackOff) or they never became ready
    (``timed_out``: v1's DeploymentTimedOut, which leaves the service ``Unhealthy``)."""

    status_code = 400
    code = "deployment_failed"
    default_hint = "Read the service's logs: 'modelhost service logs <name>' (or service.get_logs())."

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None,
                 timed_out: bool = False) -> None:
        super().__init__(message, hint=hint, details=details)
        self.timed_out = timed_out


class StoreUnavailableError(ModelhostError):
    status_code = 503
    code = "store_unavailable"
    default_hint = "Check the database URL (MODELHOST_DATABASE_URL) and that the database server is running."


class ControlPlaneUnavailableError(ModelhostError):
    status_code = 503
    code = "control_plane_unavailable"
    default_hint = "Start it with 'modelhost up', or check MODELHOST_HOME points at your workspace."


def _all_subclasses(cls: type[ModelhostError]) -> list[type[ModelhostError]]:
    found: list[type[ModelhostError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def from_payload(status_code: int, payload: Any) -> ModelhostError:
    """Rebuild the error the control plane raised from its JSON body (used by the SDK)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return ModelhostError(f"control plane answered HTTP {status_code}: {payload!r}")
    classes: list[type[ModelhostError]] = [ModelhostError, *_all_subclasses(ModelhostError)]
    by_code = {known.code: known for known in classes}
    cls = by_code.get(str(error.get("code")), ModelhostError)
    return cls(str(error.get("message", "")), hint=error.get("hint"), details=error.get("details") or [])
