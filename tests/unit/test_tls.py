"""modelhost.tls: checks of a certificate chain and its key, and self-signed generation (pure, explicit now).

Certificates from ``trustme`` (an independent CA implementation) are the oracle for "a good chain"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509

from modelhost.errors import ValidationError
from modelhost.sdk.ssl import SslConfiguration, SslEnabling
from modelhost.tls import CertKeyPair, check_pair, covers, generate_ca, inspect_chain, issue_leaf, load_chain

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BAD_KEY = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


def _trustme_pair(*names: str, **kwargs: object) -> tuple[trustme.CA, CertKeyPair]:
    ca = trustme.CA()
    leaf = ca.issue_cert(*names, **kwargs)  # type: ignore[arg-type]
    chain = b"".join(p.bytes() for p in leaf.cert_chain_pems)
    return ca, CertKeyPair(chain, leaf.private_key_pem.bytes())


def test_a_trustme_chain_passes_and_reports_names_and_fingerprint() -> None:
    _, pair = _trustme_pair("ml.example.com", "127.0.0.1")
    info = check_pair(pair, cname="ml.example.com", now=datetime.now(UTC))
    assert info.dns_names == ("ml.example.com",) and info.ip_addresses == ("127.0.0.1",)
    assert len(info.fingerprint_sha256.split(":")) == 32


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, o: CertKeyPair(b"not a certificate", p.key_pem), "not valid PEM"),
        (lambda p, o: CertKeyPair(p.cert_pem, BAD_KEY), "not a valid PEM private key"),
        (lambda p, o: CertKeyPair(p.cert_pem, o.key_pem), "does not match"),
    ],
    ids=["bad-cert-pem", "bad-key-pem", "key-of-another-cert"],
)
def test_bad_pairs_are_refused_with_the_reason(mutate: object, message: str) -> None:
    _, pair = _trustme_pair("localhost")
    _, other = _trustme_pair("localhost")
    with pytest.raises(ValidationError, match=message) as info:
        check_pair(mutate(pair, other), cname="localhost", now=datetime.now(UTC))  # type: ignore[operator]
    assert "AAAA" not in str(info.value) and info.value.hint


def test_validity_window_and_cname_are_checked() -> None:
    ca = generate_ca(NOW)
    leaf = issue_leaf(ca, ["localhost", "127.0.0.1"], NOW, days=10)
    with pytest.raises(ValidationError, match="expired"):
        check_pair(leaf, cname=None, now=NOW + timedelta(days=11))
    with pytest.raises(ValidationError, match="not valid yet"):
        check_pair(leaf, cname=None, now=NOW - timedelta(days=1))
    with pytest.raises(ValidationError, match=r"does not name 'ml.example.com'.*localhost, 127.0.0.1"):
        check_pair(leaf, cname="ml.example.com", now=NOW)
    assert check_pair(leaf, cname="127.0.0.1", now=NOW).not_after == NOW + timedelta(days=10)


def test_the_key_never_shows_in_repr() -> None:
    leaf = issue_leaf(generate_ca(NOW), ["localhost"], NOW)
    assert b"PRIVATE" in leaf.key_pem and "PRIVATE" not in repr(leaf) and "hidden" in repr(leaf)
    config = SslConfiguration(status="Enabled", cert="C", key=leaf.key_pem.decode(), cname="x")
    assert "PRIVATE" not in repr(config)


def test_issued_leaf_chains_to_its_ca_and_serves_tls_names() -> None:
    ca = generate_ca(NOW)
    leaf = issue_leaf(ca, ["localhost", "127.0.0.1", "ml.local"], NOW)
    chain = load_chain(leaf.cert_pem)
    assert len(chain) == 2 and chain[0].issuer == chain[1].subject
    chain[0].verify_directly_issued_by(load_chain(ca.cert_pem)[0])
    eku = chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ml.example.com", True), ("ML.example.com.", True), ("a.wild.example.com", True),
     ("b.a.wild.example.com", False), ("example.com", False), ("127.0.0.1", True), ("::1", False)],
)
def test_covers_matches_sans_and_one_label_wildcards(name: str, expected: bool) -> None:
    _, pair = _trustme_pair("ml.example.com", "*.wild.example.com", "127.0.0.1")
    assert covers(inspect_chain(load_chain(pair.cert_pem)), name) is expected


def test_an_out_of_order_chain_is_refused() -> None:
    _, pair = _trustme_pair("localhost")
    other_ca, _ = _trustme_pair("localhost")
    wrong = pair.cert_pem + other_ca.cert_pem.bytes()  # a CA that did not issue the leaf
    with pytest.raises(ValidationError, match="out of order"):
        check_pair(CertKeyPair(wrong, pair.key_pem), cname=None, now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "Enabled", "cert": "C", "cname": "x"}, "missing: key"),
        ({"status": "Auto", "leaf_domain_label": "mine"}, "not supported"),
        ({"status": "SelfSigned", "cert": "C"}, "takes no cert"),
        ({"status": "Sometimes"}, "is not one of"),
    ],
    ids=["all-or-none", "microsoft-cert", "self-signed-with-cert", "unknown-status"],
)
def test_ssl_configuration_follows_v1_rules(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SslConfiguration(**kwargs).to_payload()  # type: ignore[arg-type]


def test_enable_ssl_reads_pem_files_and_refuses_a_leaf_domain_label(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    leaf = issue_leaf(generate_ca(NOW), ["ml.local"], NOW)
    (folder / "c.pem").write_bytes(leaf.cert_pem)
    (folder / "k.pem").write_bytes(leaf.key_pem)
    target = SslEnabling()
    target.enable_ssl(ssl_cname="ml.local", ssl_cert_pem_file=str(folder / "c.pem"),
                      ssl_key_pem_file=str(folder / "k.pem"))
    assert target.ssl_configuration is not None
    assert target.ssl_configuration.to_payload() == {"cert_pem": leaf.cert_pem.decode(),
                                                     "key_pem": leaf.key_pem.decode(), "cname": "ml.local"}
    with pytest.raises(ValidationError, match="not supported"):
        target.enable_ssl(leaf_domain_label="contoso")
    with pytest.raises(ValidationError, match="provided together"):
        target.enable_ssl(ssl_cname="ml.local")
