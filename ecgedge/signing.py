"""Ed25519 signatures over a file's exact bytes: who wrote an export's ``manifest.json``.

The sha256 list in a manifest catches accidents (a truncated copy, a bit flip, a stray file), but
anyone who edits a model file or the label map can re-hash and rewrite the manifest. A signature
made with a private key only the exporter holds closes that: any edit to the signed file (labels,
preprocessing, a hash, hence a model file) needs the private key to re-sign.

This module knows files and keys, not manifests: :mod:`ecgedge.manifest` signs and verifies its
``manifest.json`` with it (``manifest.sig`` beside it), so the format module stays the bottom of
the graph and nothing here imports it. ``cryptography`` is imported only when a key is used.
Keys are PEM files: PKCS#8 private keys (unencrypted) and SubjectPublicKeyInfo public keys.

A signature file holds the 64-byte signature followed by the signer's 32-byte raw public key, so a
signature that exists is checked by every reader without being told a key (:func:`verify_file`
with no ``public_key``): an edit after signing is refused even when nobody remembered ``--key``.
Giving a public key additionally pins the signer (the embedded key must be that one): without it,
whoever edits a file could re-sign it with a key of their own. A 64-byte signature (an ecgedge
before this rule, no embedded key) can only be checked with a key, and is refused without one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ecgedge.errors import ArtefactError, ConfigError


def signature_path(path: str | Path) -> Path:
    """Where the signature of ``path`` lives: beside it, suffix ``.sig`` (``manifest.json`` -> ``manifest.sig``)."""
    return Path(path).with_suffix(".sig")


def generate_keypair(private_path: str | Path, public_path: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as PEM: the private key (mode 0600) and its public key.

    Refuses (:class:`ConfigError`) to overwrite either file: losing a signing key is not undoable.
    Returns ``(private_path, public_path)``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise ConfigError(f"{p} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def _load_key(path: str | Path, *, private: bool):
    """The Ed25519 key in PEM file ``path``; :class:`ConfigError` if it is missing or not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    what, kind = ("signing key", "an unencrypted PEM private key") if private else ("public key", "a PEM public key")
    want = Ed25519PrivateKey if private else Ed25519PublicKey
    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None) if private else serialization.load_pem_public_key(data)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {path} is not {kind} ({exc})") from None
    if not isinstance(key, want):
        raise ConfigError(f"{what} {path} is a {type(key).__name__}, not an Ed25519 {'private' if private else 'public'} key")
    return key


def load_private_key(path: str | Path):
    """The Ed25519 private key in PEM file ``path``; :class:`ConfigError` if it is missing or not one."""
    return _load_key(path, private=True)


def load_public_key(path: str | Path):
    """The Ed25519 public key in PEM file ``path``; :class:`ConfigError` if it is missing or not one."""
    return _load_key(path, private=False)


def sign_file(path: str | Path, private_key) -> Path:
    """Sign the exact bytes of ``path`` and write the 64-byte signature to :func:`signature_path`
    (written beside, then renamed: an interrupted run leaves the old signature).

    ``private_key``: a PEM file path or a key from :func:`load_private_key`. Returns the signature's path.
    """
    if isinstance(private_key, (str, Path)):
        private_key = load_private_key(private_key)
    from ecgedge.fsio import atomic_write_bytes

    path = Path(path)
    sig = signature_path(path)
    return atomic_write_bytes(sig, private_key.sign(path.read_bytes()) + _raw(private_key.public_key()))


_SIG_BYTES, _KEY_BYTES = 64, 32


def _raw(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signer_key(path: str | Path):
    """The public key embedded in ``path``'s signature file; ``None`` where there is no signature or
    it embeds none (an older 64-byte signature)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    sig = signature_path(path)
    if not sig.is_file():
        return None
    blob = sig.read_bytes()
    return Ed25519PublicKey.from_public_bytes(blob[_SIG_BYTES:]) if len(blob) == _SIG_BYTES + _KEY_BYTES else None


def verify_file(path: str | Path, public_key=None, data: bytes | None = None) -> bool:
    """Check :func:`signature_path`'s signature of ``path``'s bytes (or ``data``, the bytes already
    read from ``path``, so that what is verified is what the caller goes on to parse).

    Without ``public_key`` a signature that exists is checked against the key it embeds; an unsigned
    file passes (returns ``False``). With ``public_key`` (a PEM file path or a key from
    :func:`load_public_key`) the file must be signed, and by that key. Returns whether it is signed.

    Raises:
        ArtefactError: one line: no signature where a key was given, a signature that does not
            match (the file was edited after signing), one by another key than the one given, or a
            signature file that is neither format.
    """
    path = Path(path)
    sig = signature_path(path)
    if public_key is None and not sig.is_file():
        return False  # nothing to check, and no cryptography import on an unsigned edge device
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key_name = str(public_key) if isinstance(public_key, (str, Path)) else "the given public key"
    if isinstance(public_key, (str, Path)):
        public_key = load_public_key(public_key)
    if not sig.is_file():
        raise ArtefactError(f"{path} is not signed (no {sig.name}); a public key was given, so an unsigned export is refused")
    blob = sig.read_bytes()
    if len(blob) == _SIG_BYTES + _KEY_BYTES:
        signature, embedded = blob[:_SIG_BYTES], Ed25519PublicKey.from_public_bytes(blob[_SIG_BYTES:])
        if public_key is not None and _raw(public_key) != _raw(embedded):
            raise ArtefactError(f"{path}: signature does not match {key_name}: signed with another key; refused")
        key = embedded
    elif len(blob) == _SIG_BYTES:
        if public_key is None:
            raise ArtefactError(f"{path} is signed ({sig.name}) in the older format that names no signer, so it can "
                                "only be checked with the exporter's public key: pass --key, or re-sign it; refused")
        signature, key = blob, public_key
    else:
        raise ArtefactError(f"{sig}: {len(blob)} bytes, not an ecgedge signature (64 or 96 bytes); refused")
    try:
        key.verify(signature, path.read_bytes() if data is None else data)
    except InvalidSignature:
        who = key_name if public_key is not None else "its signer's key"
        raise ArtefactError(f"{path}: signature does not match {who} (edited after signing, or signed with another "
                            "key); refused") from None
    return True
