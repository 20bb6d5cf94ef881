"""What the sandbox keeps private in its data dir: the admin token, its certificate authority.

The data dir holds the objects (Secrets included), the tokens users authenticate with and the
keys the server's certificates are signed with, so it is made private on every start, as
kube-apiserver's own files are on a real control plane: the dir is 0700 and the files that
matter are 0600, also when they already existed with looser modes.

At first start the sandbox makes, in its data dir:

- ``admin-token``: a random bearer token, the kubeconfig's credential (user ``sandbox-admin``
  in ``system:masters``). Each data dir has its own; a restart keeps it, so kubeconfigs stay
  valid.
- ``ca.crt``/``ca.key``: a certificate authority of the sandbox's own (ECDSA P-256, ten years),
  which the kubeconfig names as ``certificate-authority-data``, as a real cluster's does.
- ``apiserver.crt``/``apiserver.key``: the serving certificate, signed by that CA, for
  ``localhost``, ``127.0.0.1`` and ``::1`` (and the address served on, when it is another one).
  It is issued again when it would expire within 30 days, was signed by another CA, or does
  not name the address served on.

``cryptography`` is imported only when a certificate has to be made or read.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

ADMIN_TOKEN_FILE = "admin-token"
TOKEN_FILE = "tokens.csv"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "apiserver.crt"
SERVER_KEY = "apiserver.key"
DATABASE = "sandbox.db"
KUBECONFIG = "kubeconfig"
# Every file of the data dir that holds a secret (the database's WAL and SHM hold objects too).
PRIVATE_FILES = (
    DATABASE,
    f"{DATABASE}-wal",
    f"{DATABASE}-shm",
    ADMIN_TOKEN_FILE,
    TOKEN_FILE,
    CA_KEY,
    SERVER_KEY,
    KUBECONFIG,
)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` if needed, and make it and its secret files readable by the owner only.

    The database file is created here (empty, 0600) when missing: SQLite gives its WAL and SHM
    files the database file's mode.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for name in (DATABASE, TOKEN_FILE):
        fd = os.open(data_dir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
    for name in PRIVATE_FILES:
        path = data_dir / name
        try:
            if stat.S_IMODE(path.lstat().st_mode) != 0o600 and path.is_file():
                os.chmod(path, 0o600)
        except FileNotFoundError:
            continue


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only from the first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def admin_token(data_dir: Path) -> str:
    """The data dir's admin token, made on first use."""
    path = data_dir / ADMIN_TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        write_private(path, token.encode() + b"\n")
    return token


@dataclass(frozen=True)
class ServingCertificate:
    """The files the server loads, and the CA certificate clients verify it with (PEM)."""

    cert_file: Path
    key_file: Path
    ca_pem: bytes


def server_names(host: str) -> list[str]:
    """The names the serving certificate is for: the local ones, and ``host`` unless it is a
    wildcard address (a server on every interface is still reached as 127.0.0.1)."""
    names = list(LOCAL_NAMES)
    if host and host not in names and host not in ("0.0.0.0", "::", ""):
        names.append(host)
    return names


def serving_certificate(data_dir: Path, host: str) -> ServingCertificate:
    """The CA (made once) and a serving certificate for ``host`` signed by it (made when needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_cert, ca_key = _certificate_authority(data_dir)
    names = server_names(host)
    cert_file, key_file = data_dir / SERVER_CERT, data_dir / SERVER_KEY
    current: x509.Certificate | None = None
    try:
        current = x509.load_pem_x509_certificate(cert_file.read_bytes())
        serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        current = None
    if current is None or not _still_good(current, ca_cert, names):
        cert_pem, key_pem = _issue(ca_cert, ca_key, names)
        write_private(key_file, key_pem)
        write_private(cert_file, cert_pem)
    return ServingCertificate(cert_file, key_file, ca_cert.public_bytes(serialization.Encoding.PEM))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _certificate_authority(data_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_file, key_file = data_dir / CA_CERT, data_dir / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if cert.not_valid_after_utc - _now() > RENEW_BEFORE and isinstance(key, ec.EllipticCurvePrivateKey):
            return cert, key
    except (OSError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "progdel-sandbox-ca")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_file, key_pem)
    write_private(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(cert_file, 0o644)  # the CA certificate is public: the kubeconfig carries it anyway
    return cert, key


def _still_good(cert: x509.Certificate, ca_cert: x509.Certificate, names: list[str]) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    covered = {str(n) for n in sans.get_values_for_type(x509.IPAddress)}
    covered |= set(sans.get_values_for_type(x509.DNSName))
    return all(str(_as_ip(n) or n) in covered for n in names)


def _as_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _issue(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str]
) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in names:
        ip = _as_ip(n)
        alt.append(x509.IPAddress(ip) if ip is not None else x509.DNSName(n))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "progdel-sandbox-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
