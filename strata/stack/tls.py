"""A self-signed certificate so that HAProxy can terminate TLS on a local stack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import StackError

__all__ = ["ensure_self_signed_pem"]


def ensure_self_signed_pem(directory: Path, hosts: list[str]) -> Path:
    """Return a PEM (certificate + key) for ``hosts``, creating it with openssl once."""
    pem = directory / "strata-selfsigned.pem"
    if pem.exists():
        return pem
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("tls", "openssl is not installed; run without --tls or install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    names = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    cert, key = directory / "cert.pem", directory / "key.pem"
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "365",
            "-subj",
            "/CN=strata-local",
            "-addext",
            f"subjectAltName={names}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise StackError("tls", f"openssl could not make a certificate: {result.stderr.strip()}")
    pem.write_text(cert.read_text() + key.read_text())
    pem.chmod(0o600)
    key.unlink()
    return pem
