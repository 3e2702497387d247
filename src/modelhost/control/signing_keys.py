"""The workspace's token signing keys: Ed25519 private keys as PEM files only the control plane reads.

Layout (directory 0700, every file 0600, written atomically)::

    <home>/secrets/signing/<kid>.pem     PKCS#8 private key
    <home>/secrets/signing/keys.json     {"issuer": ..., "active": kid,
                                          "keys": {kid: {"created": t, "retired": t|null, "ttl_s": s}}}

One key is active (it signs new tokens). :meth:`SigningKeys.rotate` makes a new active key and
retires the old one; a retired key stays (its public half in the routing table) until every token
it signed has expired -- ``retired + ttl_s``, where ``ttl_s`` is the longest lifetime it signed
with -- and is then pruned. The ``kid`` is a thumbprint of the public key (public, stable).
Nothing here returns or logs a private key except :meth:`SigningKeys.active`, for the minter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from modelhost.control.discovery import write_private
from modelhost.errors import ModelhostError

__all__ = ["KeyInfo", "SigningKeys", "kid_of", "public_text"]

_META = "keys.json"


def public_text(key: Ed25519PrivateKey) -> str:
    """The public half as url-safe base64 of its 32 raw bytes (the routing table's form)."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def kid_of(key: Ed25519PrivateKey) -> str:
    """A key id from the public key's SHA-256 (16 url-safe characters)."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode()


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the private part."""

    kid: str
    created: float
    retired: float | None
    ttl_s: float
    public_key: str

    @property
    def active(self) -> bool:
        return self.retired is None

    def expires_tokens_by(self) -> float | None:
        """When the last token this key signed expires (None while it is active)."""
        return None if self.retired is None else self.retired + self.ttl_s

    def to_dict(self) -> dict[str, Any]:
        return {"kid": self.kid, "created": self.created, "active": self.active, "retired": self.retired,
                "prunedAfter": self.expires_tokens_by(), "publicKey": self.public_key}


class SigningKeys:
    """The signing keys of one workspace; thread-safe within the control plane."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._meta: dict[str, Any] = {}

    @classmethod
    def open(cls, home: Path, *, ttl_s: float, now: float) -> SigningKeys:
        """Load (or create, with a first key) ``<home>/secrets/signing``; prune expired keys."""
        keys = cls(home / "secrets" / "signing")
        with keys._lock:
            keys._load()
            if keys._meta.get("active") not in keys._private:
                keys._add_active(now, ttl_s)
            keys._prune(now)
            keys._save()
        return keys

    @property
    def issuer(self) -> str:
        return str(self._meta["issuer"])

    # -- reading -------------------------------------------------------------------------------

    def active(self, ttl_s: float) -> tuple[str, Ed25519PrivateKey]:
        """The key that signs now (kid, private key); records ``ttl_s`` if longer than any before,
        so the key is kept until tokens of that lifetime have expired."""
        with self._lock:
            kid = str(self._meta["active"])
            entry = self._meta["keys"][kid]
            if ttl_s > float(entry["ttl_s"]):
                entry["ttl_s"] = ttl_s
                self._save()
            return kid, self._private[kid]

    def list(self) -> list[KeyInfo]:
        """Every key kept, oldest first."""
        with self._lock:
            infos = [self._info(kid) for kid in self._private]
        return sorted(infos, key=lambda k: (k.created, k.kid))

    def public_keys(self, now: float) -> dict[str, str]:
        """kid -> public key text of every key whose tokens may still be valid (pruning the rest)."""
        with self._lock:
            if self._prune(now):
                self._save()
            return {kid: public_text(key) for kid, key in self._private.items()}

    # -- changing ------------------------------------------------------------------------------

    def rotate(self, now: float, ttl_s: float) -> KeyInfo:
        """A new active key; the old one signs no more but verifies until its tokens expired."""
        with self._lock:
            old = self._meta.get("active")
            if old in self._meta["keys"]:
                self._meta["keys"][old]["retired"] = now
            kid = self._add_active(now, ttl_s)
            self._prune(now)
            self._save()
            return self._info(kid)

    # -- storage -------------------------------------------------------------------------------

    def _info(self, kid: str) -> KeyInfo:
        entry = self._meta["keys"][kid]
        retired = entry.get("retired")
        return KeyInfo(kid=kid, created=float(entry["created"]),
                       retired=None if retired is None else float(retired), ttl_s=float(entry["ttl_s"]),
                       public_key=public_text(self._private[kid]))

    def _add_active(self, now: float, ttl_s: float) -> str:
        key = Ed25519PrivateKey.generate()
        kid = kid_of(key)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        self._ensure_folder()
        write_private(self.folder / f"{kid}.pem", pem)
        self._private[kid] = key
        self._meta["keys"][kid] = {"created": now, "retired": None, "ttl_s": ttl_s}
        self._meta["active"] = kid
        return kid

    def _prune(self, now: float) -> bool:
        gone = [kid for kid in self._private
                if (by := self._info(kid).expires_tokens_by()) is not None and by <= now]
        for kid in gone:
            self._private.pop(kid)
            self._meta["keys"].pop(kid, None)
            (self.folder / f"{kid}.pem").unlink(missing_ok=True)
        return bool(gone)

    def _ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder.parent, 0o700)
        os.chmod(self.folder, 0o700)

    def _load(self) -> None:
        self._ensure_folder()
        path = self.folder / _META
        try:
            self._meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._meta = {}
        except (OSError, ValueError) as exc:
            raise ModelhostError(
                f"The signing key index {path} is unreadable: {exc}",
                hint=f"Restore it, or remove {self.folder} (tokens issued so far stop working).",
            ) from exc
        self._meta.setdefault("issuer", f"modelhost:ws-{uuid.uuid4().hex}")
        self._meta.setdefault("keys", {})
        for kid in list(self._meta["keys"]):
            pem = self.folder / f"{kid}.pem"
            try:
                key = load_pem_private_key(pem.read_bytes(), password=None)
            except (OSError, ValueError):
                self._meta["keys"].pop(kid)  # a lost key file: its tokens can no longer be verified
                continue
            if isinstance(key, Ed25519PrivateKey):
                self._private[kid] = key

    def _save(self) -> None:
        write_private(self.folder / _META, json.dumps(self._meta, indent=2) + "\n")
