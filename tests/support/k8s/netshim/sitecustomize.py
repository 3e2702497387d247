"""Loaded by every Python process the node agent starts (it puts this folder first on PYTHONPATH).

A pod has its own network namespace, so binding 0.0.0.0 there means "the pod's address". The node
agent runs pods as local processes that share the host's network, so this binds the pod's loopback
address (MODELHOST_TEST_POD_IP, 127.1.x.y) instead and two pods can use the same container port.
"""

import os
import socket

_POD_IP = os.environ.get("MODELHOST_TEST_POD_IP")

if _POD_IP:
    _bind = socket.socket.bind

    def _pod_bind(self, address):  # type: ignore[no-untyped-def]
        if self.family == socket.AF_INET and isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
            address = (_POD_IP, *address[1:])
        return _bind(self, address)

    socket.socket.bind = _pod_bind  # type: ignore[method-assign]
