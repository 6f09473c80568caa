"""Server credentials from `--tls-cert`, `--tls-key` and `--tls-client-ca`.

gRPC itself takes PEM bytes and only complains about them when a client connects, in a log
line the operator may never see. So the files are first loaded into a throwaway `ssl`
context, which checks that each holds what its flag needs and that key and certificate
belong together, and a bad file stops the server at start-up naming its flag.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from server._files import SettingsFileError, read_text
from server.config import Config

CERT_FLAG = "--tls-cert"
KEY_FLAG = "--tls-key"
CLIENT_CA_FLAG = "--tls-client-ca"


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """Credentials for `add_secure_port`, or None when the server is to listen in the clear.

    With a client CA, every client must present a certificate signed by it (mutual TLS).
    Raises SettingsFileError naming the flag whose file cannot be used.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None
    certificate = _certificates(CERT_FLAG, config.tls_cert)
    key = _private_key(config.tls_key)
    _check_pair(config.tls_cert, config.tls_key)
    client_ca = None
    if config.tls_client_ca is not None:
        client_ca = _certificates(CLIENT_CA_FLAG, config.tls_client_ca)
    return grpc.ssl_server_credentials(
        [(key.encode(), certificate.encode())],
        root_certificates=None if client_ca is None else client_ca.encode(),
        require_client_auth=client_ca is not None,
    )


def _certificates(flag: str, path: Path) -> str:
    text = read_text(flag, path)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError):
        raise SettingsFileError(flag, path, "holds no PEM certificate") from None
    return text


def _private_key(path: Path) -> str:
    text = read_text(KEY_FLAG, path)
    if "ENCRYPTED" in text:
        # grpc.ssl_server_credentials has no way to take a passphrase.
        raise SettingsFileError(KEY_FLAG, path, "is encrypted; give an unencrypted PEM key")
    if "PRIVATE KEY-----" not in text:
        raise SettingsFileError(KEY_FLAG, path, "holds no PEM private key")
    return text


def _check_pair(cert: Path, key: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            problem = f"does not belong to the certificate in {CERT_FLAG} {cert}"
        else:
            problem = "cannot be loaded as the private key of that certificate"
        raise SettingsFileError(KEY_FLAG, key, problem) from None


def _no_password() -> bytes:
    # Without a callback, OpenSSL would prompt on the terminal for a passphrase.
    return b""
