"""The control plane: the workspace REST API over the store, the builder and (later) the runtime.

Nothing imports this package but the entry points (``modelhost.cli``, ``python -m modelhost.control``);
the SDK finds or starts the local control plane as a process (:mod:`modelhost.sdk.local`). Importing
the package itself is cheap; the server's dependencies load in :func:`modelhost.control.server.serve`.
"""
