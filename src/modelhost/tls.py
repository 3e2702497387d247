"""Certificates for the front door: check a PEM certificate chain and its key, make self-signed ones.

Pure (``cryptography`` only, no files, no clock: ``now`` is an argument)::

    pair = CertKeyPair(cert_pem, key_pem)
    info = check_pair(pair, cname="ml.example.com", now=now)   # ValidationError naming the problem
    ca = generate_ca(now)                                        # a local CA for self-signed use
    leaf = issue_leaf(ca, ["localhost", "127.0.0.1"], now)       # a server certificate signed by it

A private key never appears in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelhost.errors import ValidationError

__all__ = [
    "CertInfo",
    "CertKeyPair",
    "check_pair",
    "covers",
    "fingerprint_sha256",
    "generate_ca",
    "inspect_chain",
    "issue_leaf",
    "load_chain",
]

CA_DAYS: Final = 3650
LEAF_DAYS: Final = 397  # the longest validity browsers accept for a server certificate
_BACKDATE = timedelta(minutes=5)  # tolerate small clock differences between machines
_SigningKey = (rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
               | ed448.Ed448PrivateKey)


@dataclass(frozen=True)
class CertKeyPair:
    """A PEM certificate chain (leaf first) and its PEM private key; the key stays out of ``repr``."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"CertKeyPair(cert_pem=<{len(self.cert_pem)} bytes>, key_pem=<hidden>)"


@dataclass(frozen=True)
class CertInfo:
    """What the control plane shows about a certificate (never the key)."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    chain_length: int


def _bad(message: str, hint: str) -> ValidationError:
    return ValidationError(message, hint=hint)


def load_chain(cert_pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM chain, leaf first; ``ValidationError`` when there is none or one is bad."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise _bad(f"The certificate is not valid PEM: {exc}",
                   "Give a PEM file that starts with '-----BEGIN CERTIFICATE-----' (leaf first, then "
                   "its intermediates).") from exc
    if not certs:  # pragma: no cover - cryptography raises on no certificate
        raise _bad("The certificate file holds no certificate", "Give a PEM certificate chain.")
    return certs


def _load_key(key_pem: bytes) -> _SigningKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:  # encrypted: the message names the password, never the key
        raise _bad("The private key is encrypted with a password",
                   "Give the key unencrypted (e.g. 'openssl pkey -in key.pem -out plain.pem'); "
                   "it is stored with mode 0600.") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        # never echo the exception text: it could quote parts of the key
        raise _bad("The private key is not a valid PEM private key",
                   "Give a PEM file that starts with '-----BEGIN PRIVATE KEY-----' (or RSA/EC PRIVATE "
                   "KEY).") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      | ed448.Ed448PrivateKey):
        raise _bad(f"The private key type {type(key).__name__} cannot serve TLS",
                   "Use an RSA, EC or Ed25519 key.")
    return key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """``AB:CD:...`` as browsers and ``openssl x509 -fingerprint -sha256`` show it."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _sans(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns = tuple(ext.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    return dns, ips


def inspect_chain(certs: list[x509.Certificate]) -> CertInfo:
    leaf = certs[0]
    dns, ips = _sans(leaf)
    return CertInfo(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        dns_names=dns,
        ip_addresses=ips,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=fingerprint_sha256(leaf),
        chain_length=len(certs),
    )


def covers(info: CertInfo, name: str) -> bool:
    """Whether the certificate's SANs name ``name`` (an IP address or a host name; one-label wildcards)."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return any(ipaddress.ip_address(a) == ip for a in info.ip_addresses)
    host = name.rstrip(".").lower()
    for pattern in (d.rstrip(".").lower() for d in info.dns_names):
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _check_links(certs: list[x509.Certificate]) -> None:
    for child, parent in itertools.pairwise(certs):
        if child.issuer != parent.subject:
            raise _bad(f"The certificate chain is out of order: {child.subject.rfc4514_string()!r} is not "
                       f"issued by the next certificate {parent.subject.rfc4514_string()!r}",
                       "Order the PEM file leaf first, then each issuer (the root may be left out).")


def check_pair(pair: CertKeyPair, *, cname: str | None, now: datetime,
               also_covers: tuple[str, ...] = ()) -> CertInfo:
    """Check that the chain parses, the key matches the leaf, ``now`` is inside the leaf's validity
    window and the leaf names ``cname`` (and every name in ``also_covers``). Returns the leaf's info."""
    certs = load_chain(pair.cert_pem)
    key = _load_key(pair.key_pem)
    _check_links(certs)
    leaf = certs[0]
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        raise _bad("The private key does not match the certificate (their public keys differ)",
                   "Give the key the certificate was issued for; the leaf certificate must come first "
                   "in the chain.")
    info = inspect_chain(certs)
    if now < info.not_before:
        raise _bad(f"The certificate is not valid yet: valid from {info.not_before.isoformat()}",
                   "Check the machine's clock, or use a certificate whose validity has begun.")
    if now >= info.not_after:
        raise _bad(f"The certificate expired on {info.not_after.isoformat()}",
                   "Renew the certificate, or use 'modelhost router tls self-signed' for local use.")
    for name in (*((cname,) if cname else ()), *also_covers):
        if not covers(info, name):
            names = ", ".join((*info.dns_names, *info.ip_addresses)) or "none"
            raise _bad(f"The certificate does not name {name!r} (its subject alternative names: {names})",
                       "Use a certificate issued for that name, or set the cname to one it names.")
    return info


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelhost"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_ca(now: datetime, common_name: str = "modelhost local CA", days: int = CA_DAYS) -> CertKeyPair:
    """A new certificate authority (P-256) for a workspace's self-signed front door."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_leaf(ca: CertKeyPair, names: list[str], now: datetime, days: int = LEAF_DAYS) -> CertKeyPair:
    """A server certificate for ``names`` (host names or IP addresses) signed by ``ca``; its
    ``cert_pem`` is the chain a server sends (leaf, then the CA)."""
    if not names:
        raise _bad("A certificate needs at least one name", "Pass a host name or an IP address.")
    ca_cert = load_chain(ca.cert_pem)[0]
    ca_key = _load_key(ca.key_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    unique = list(dict.fromkeys(names))
    cert = (
        x509.CertificateBuilder().subject_name(_name(unique[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in unique]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    return CertKeyPair(chain, _key_pem(key))
