"""Throwaway certificates for TLS tests: a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate from that CA, and one from a CA nobody trusts.

P-256 keys: a key pair takes microseconds, where RSA would take a noticeable part of a second.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Pki:
    ca: Identity
    server: Identity
    client: Identity
    #: Signed by a CA of its own, which the server does not trust.
    stranger: Identity


def make_pki(directory: Path) -> Pki:
    ca_key, ca_cert = _certificate("chunkwise test CA", None, ca=True)
    stranger_ca_key, stranger_ca_cert = _certificate("another CA", None, ca=True)
    server_key, server_cert = _certificate(
        "localhost",
        (ca_key, ca_cert),
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client_key, client_cert = _certificate(
        "billing backend",
        (ca_key, ca_cert),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    stranger_key, stranger_cert = _certificate(
        "billing backend",
        (stranger_ca_key, stranger_ca_cert),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return Pki(
        ca=_write(directory, "ca", ca_key, ca_cert),
        server=_write(directory, "server", server_key, server_cert),
        client=_write(directory, "client", client_key, client_cert),
        stranger=_write(directory, "stranger", stranger_key, stranger_cert),
    )


def _certificate(
    common_name: str,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return key, builder.sign(signing_key, hashes.SHA256())


def _write(
    directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> Identity:
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Identity(cert_path, key_path)


def encrypted_key(identity: Identity, path: Path) -> Path:
    """`identity`'s key, encrypted with a passphrase, written to `path`."""
    key = serialization.load_pem_private_key(identity.key_pem(), password=None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return path
