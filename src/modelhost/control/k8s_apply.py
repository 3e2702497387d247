"""Applying rendered objects for an install (the router, the control plane) and wording a refusal.

Server-side apply with field manager ``modelhost``, forced: an install owns every field it renders.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names

__all__ = ["Installer"]

_APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Installer:
    """What is being installed (``"the router"``) and the rights beyond attach's that it needs."""

    what: str
    extra_rights: str  # e.g. "serviceaccounts, roles and rolebindings"

    def apply(self, call: Any, obj: dict[str, Any], namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            call(obj["metadata"]["name"], namespace, obj, field_manager=names.FIELD_MANAGER, force=True,
                 _content_type=_APPLY, _preload_content=False)
        except ApiException as exc:
            raise self.refused(exc, f"apply {obj['kind']}/{obj['metadata']['name']}", namespace) from exc

    def refused(self, exc: Any, action: str, namespace: str) -> ValidationError:
        """The API server's message for ``action``, with the fix for a 403."""
        reason = exc.reason
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            reason = json.loads(exc.body).get("message", reason)
        hint = "Check the target with 'modelhost compute show'."
        if exc.status == 403:
            hint = (f"Installing {self.what} also needs create/patch on {self.extra_rights} in namespace "
                    f"{namespace}: run it with an admin kubeconfig, or grant those (docs/kubernetes.md).")
        return ValidationError(
            f"Installing {self.what} failed: cannot {action} (HTTP {exc.status}): {reason}", hint=hint
        )
