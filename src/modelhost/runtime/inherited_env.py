"""◆ What a replica inherits from the control plane's environment: an allow-list, nothing else.

The control plane's environment may hold its own secrets (``MODELHOST_*``, tokens, cloud
credentials, proxy URLs with passwords); a replica runs user code, so it gets only what a process
needs to run (locale, search paths, CA bundles). A service that needs more sets it in its own
environment variables (the deployment's or its environment's ``env_vars``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["INHERITED", "INHERITED_PREFIXES", "OWN_USER_ONLY", "inherited_env"]

INHERITED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "TERM",
        "LANG", "LANGUAGE", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
    }
)  # fmt: skip
INHERITED_PREFIXES = ("LC_",)
# The control plane's own user and folders: meaningless (or unwritable) for another replica user.
OWN_USER_ONLY = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "TMPDIR"})


def inherited_env(environ: Mapping[str, str], *, same_user: bool = True) -> dict[str, str]:
    """The allow-listed part of ``environ``; without ``same_user`` also minus the user's own names."""
    return {
        k: v
        for k, v in environ.items()
        if (k in INHERITED or k.startswith(INHERITED_PREFIXES)) and (same_user or k not in OWN_USER_ONLY)
    }
