"""Secret fingerprints, keyed by the deployment's fingerprint key.

A fingerprint stands for a secret in the canonical form: ``"hmac-sha256:"`` and the first 32
hex digits (128 bits) of an HMAC-SHA256 of the secret under the *fingerprint key*. Without
the key, a stored fingerprint cannot be used to test guesses of the secret; with one key per
deployment, every process and host of that deployment computes the same hashes.

The key is, in order: ``$CLIENTREG_FINGERPRINT_KEY`` (a fleet sets the same value on every
host); else the file ``fingerprint.key`` in the user data directory, made once with 32 random
bytes (so every process of the user agrees); else, when that directory cannot be used, a
fixed public key, with one warning: fingerprints then stay stable but are not keyed. The key
is read once per process, on the first fingerprint.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

KEY_VARIABLE = "CLIENTREG_FINGERPRINT_KEY"
KEY_FILENAME = "fingerprint.key"
DEFAULT_KEY = "clientreg-public-default-fingerprint-key-v2"
"""The key used when no other is available. It is public: fingerprints made with it are unkeyed."""

KeySource = Literal["environment", "file", "default"]

_DOMAIN = b"clientreg/secret-fingerprint/v2\x00"
_KEY_ID_MESSAGE = b"clientreg/fingerprint-key-id/v1"
_MIN_KEY_LENGTH = 16
_MAX_KEY_FILE = 4096
_JUST_MADE = 5.0  # seconds: an empty key file younger than this may still be being written
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

logger = logging.getLogger("clientreg.fingerprint")


class _Key:
    """The key in use, with the HMAC state that every fingerprint starts from."""

    __slots__ = ("id", "keyed", "source")

    def __init__(self, text: str, source: KeySource) -> None:
        material = text.encode("utf-8", "surrogatepass")
        self.source: KeySource = source
        self.keyed = hmac.new(material, _DOMAIN, hashlib.sha256)
        self.id = hmac.new(material, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]


_key: _Key | None = None
_on_reset: list[Callable[[], None]] = []


def fingerprint(secret: str) -> str:
    """Return the stand-in for ``secret`` in the canonical form: ``hmac-sha256:`` + 32 hex digits.

    Equal secrets have equal fingerprints wherever the fingerprint key is the same; without
    the key, a fingerprint reveals nothing about the secret and cannot confirm a guess.
    """
    key = _key if _key is not None else _load_key()
    digest = key.keyed.copy()
    digest.update(secret.encode("utf-8", "surrogatepass"))
    return "hmac-sha256:" + digest.hexdigest()[:32]


def fingerprint_key_id() -> str:
    """Return a short, non-secret id of the fingerprint key in use (16 hex digits).

    Hosts whose ids differ compute different fingerprints, hence different ``config_hash``
    values, for the same secrets: the index records it so a fleet can find them.
    """
    return (_key if _key is not None else _load_key()).id


def fingerprint_key_source() -> KeySource:
    """Return where the fingerprint key in use came from: the environment, the key file, or the default."""
    return (_key if _key is not None else _load_key()).source


def reset_fingerprint_key() -> None:
    """Forget the key read by this process; the next fingerprint reads it again (for tests)."""
    global _key
    _key = None
    for forget in _on_reset:
        forget()


def on_key_reset(forget: Callable[[], None]) -> None:
    """Call ``forget`` whenever the key is reset: caches of values derived from fingerprints."""
    _on_reset.append(forget)


def _load_key() -> _Key:
    # No lock: loading is idempotent, a race between threads reads the same variable or file
    # (the file is made with O_EXCL, so there is only ever one), and no lock can be left held
    # in a forked child.
    global _key
    text, source = find_key()
    key = _Key(text, source)
    _key = key
    return key


def find_key(directory: Path | None = None) -> tuple[str, KeySource]:
    """Return the fingerprint key and its source, reading (and making) the key file if needed.

    ``directory`` is where the key file lives; by default, the user data directory.
    """
    configured = os.environ.get(KEY_VARIABLE)
    if configured is not None and configured.strip():
        text = configured.strip()
        if len(text) < _MIN_KEY_LENGTH:
            logger.warning(
                "%s is shorter than %d characters: a short key can be guessed, and with it the secrets "
                "behind short fingerprints; use a long random value (e.g. from `openssl rand -hex 32`)",
                KEY_VARIABLE,
                _MIN_KEY_LENGTH,
            )
        return text, "environment"
    if directory is None:
        from schemas._paths import user_data_dir

        directory = user_data_dir()
    try:
        return _key_file(directory), "file"
    except _Unusable as exc:
        logger.warning(
            "clientreg: no usable fingerprint key file (%s); secret fingerprints use the public default key, "
            "so they are stable across processes but not keyed: anyone holding a stored fingerprint can test "
            "guesses of the secret. Set %s (the same value on every host of a deployment) to key them.",
            exc,
            KEY_VARIABLE,
        )
        return DEFAULT_KEY, "default"


class _Unusable(Exception):
    """The key file cannot be made or trusted; the message says why (never the key)."""


def _key_file(directory: Path) -> str:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise _Unusable(f"cannot use {directory}: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _Unusable(f"{directory} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise _Unusable(f"{directory} belongs to another user")
    path = directory / KEY_FILENAME
    for _ in range(3):
        try:
            return _read_key_file(path)
        except FileNotFoundError:
            pass
        try:
            return _create_key_file(path)
        except FileExistsError:
            continue  # another process made it first: read theirs
    raise _Unusable(f"{path} keeps appearing and disappearing")


def _create_key_file(path: Path) -> str:
    text = secrets.token_hex(32)
    try:
        fd = os.open(path, _CREATE_FLAGS, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _Unusable(f"cannot create {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        os.write(fd, (text + "\n").encode("ascii"))  # one write: a reader sees all of it or nothing
        os.fsync(fd)
    except OSError as exc:
        raise _Unusable(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    return text


def _read_key_file(path: Path) -> str:
    # A process that lost the race to create the file may find it still empty: the winner
    # writes the key right after creating it, so wait a moment for a file made just now.
    deadline = time.monotonic() + 2.0
    while True:
        text, modified = _read_once(path)
        if text or time.monotonic() > deadline or time.time() - modified > _JUST_MADE:
            break
        time.sleep(0.01)
    if len(text) < _MIN_KEY_LENGTH:
        raise _Unusable(f"{path} holds no key (empty or too short)")
    return text


def _read_once(path: Path) -> tuple[str, float]:
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unusable(f"{path} is a symbolic link") from None
        raise _Unusable(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable(f"{path} is not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise _Unusable(f"{path} belongs to another user")
        if info.st_mode & 0o077:
            logger.warning("clientreg: %s can be read by other users; make it private: chmod 600 %s", path, path)
        raw = os.read(fd, _MAX_KEY_FILE + 1)
    except OSError as exc:
        raise _Unusable(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if len(raw) > _MAX_KEY_FILE:
        raise _Unusable(f"{path} is too large to be a key file")
    try:
        return raw.decode("utf-8").strip(), info.st_mtime
    except UnicodeDecodeError:
        raise _Unusable(f"{path} is not UTF-8 text") from None
