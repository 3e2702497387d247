"""The one HTTP client of the control plane.

Every call sends the admin token; an error response becomes the very ``modelhost.errors`` class the
control plane raised (:func:`modelhost.errors.from_payload`), and a transport failure becomes
:class:`~modelhost.errors.ControlPlaneUnavailableError`. :func:`connect` finds the local control
plane through ``<home>/control.json`` and starts it when none runs.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import os
import ssl
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from modelhost.errors import ControlPlaneUnavailableError, ModelhostError, ValidationError, from_payload
from modelhost.sdk import local
from modelhost.settings import Settings

__all__ = ["ByteCallback", "ControlClient", "connect"]

ByteCallback = Callable[[int], None]  # called with the number of bytes just sent or received
_CHUNK = 1 << 20
DEFAULT_TIMEOUT_S = 60.0


class ControlClient:
    """JSON over HTTP to one control plane, with its admin token."""

    def __init__(
        self, url: str, token: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, settings: Settings | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.settings = settings  # the local workspace, when this client found it through control.json
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            verify=verify,  # an https control plane: the certificate control.json names, else the system's
        )
        # notebooks never close a Workspace: release the pooled sockets when the client is collected
        self._finalizer = weakref.finalize(self, self._http.close)

    def __repr__(self) -> str:
        return f"ControlClient({self.url!r})"

    def close(self) -> None:
        self._finalizer()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        timeout_s: float | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON, or raise the error it carried.

        ``content_type`` sends ``json`` encoded under that media type (e.g. a JSON patch as
        ``application/json-patch+json``) instead of ``application/json``.
        """
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        if content_type is not None:
            extra["content"] = jsonlib.dumps(json).encode()
            extra["headers"] = {"Content-Type": content_type}
            json = None
        try:
            response = self._http.request(method, path, json=json, params=params, **extra)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._decode(response)

    def get(self, path: str, params: Any = None, *, timeout_s: float | None = None) -> Any:
        return self.request("GET", path, params=params, timeout_s=timeout_s)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any = None, *, content_type: str | None = None) -> Any:
        return self.request("PATCH", path, json=json, content_type=content_type)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def put_blob(self, digest: str, source: Path, on_bytes: ByteCallback | None = None) -> None:
        """Stream the file ``source`` as blob ``digest``; the control plane verifies the digest."""

        def body() -> Iterator[bytes]:
            with source.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk
                    if on_bytes is not None:
                        on_bytes(len(chunk))

        try:
            response = self._http.put(
                f"/api/v1/blobs/{digest}",
                content=body(),
                headers={"Content-Type": "application/octet-stream"},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        self._decode(response)

    def stream(self, path: str, params: Any = None) -> Iterator[bytes]:
        """GET ``path`` and yield its body in chunks as it arrives (an error response raises)."""
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(None, connect=10.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                yield from response.iter_bytes(_CHUNK)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def download_blob(
        self, digest: str, dest: Path, *, executable: bool = False, on_bytes: ByteCallback | None = None
    ) -> None:
        """Write blob ``digest`` to ``dest`` (atomically, checking its sha256 on the way)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, self._http.stream("GET", f"/api/v1/blobs/{digest}") as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            if hasher.hexdigest() != digest:
                raise ValidationError(
                    f"Downloaded {dest.name} does not match its sha256 {digest[:12]}…",
                    hint="Download it again.",
                )
            os.chmod(tmp, 0o755 if executable else 0o644)
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = response.text[:500]
            raise from_payload(response.status_code, payload)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ModelhostError(
                f"The control plane at {self.url} answered with something other than JSON"
            ) from exc

    def _unreachable(self, exc: Exception) -> ControlPlaneUnavailableError:
        return ControlPlaneUnavailableError(
            f"Cannot reach the control plane at {self.url}: {type(exc).__name__}: {exc}".rstrip(": ")
        )


def connect(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    autostart: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ControlClient:
    """A client for ``url`` with ``token``, or for the local workspace of ``settings``.

    For the local workspace the running control plane is found through ``control.json``; with
    ``autostart`` one is started in the background when none runs (as ``ray.init()`` does).
    """
    if url is not None:
        if not token:
            raise ValidationError(
                "A remote workspace needs its admin token",
                hint="Pass token=... (the control plane's <home>/admin.token).",
            )
        return ControlClient(url, token, timeout_s=timeout_s)
    settings = settings or Settings.from_env()
    info = local.ensure_running(settings) if autostart else local.find_running(settings)
    if info is None:
        raise ControlPlaneUnavailableError(f"No control plane runs for the workspace {settings.home}")
    return ControlClient(info.url, token or info.token, timeout_s=timeout_s, settings=settings,
                         verify=info.verify())
