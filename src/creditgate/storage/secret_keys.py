"""Secrets at rest: webhook signing secrets and provider keys, sealed with Fernet.

The operator's keys come from `CREDITGATE_SECRET_KEYS` (comma-separated, newest first):
the newest seals, every one of them opens, so a key is rotated by putting a new one in
front, running `creditgate secrets rotate` (which re-seals every stored secret under it),
then dropping the old one. Without that variable:

- an SQLite file keeps its keys in a file beside it (`<database>.keys`, mode 0600), made
  the first time a secret is stored; the embedded default works with nothing to set, and a
  copy of the database alone does not give its secrets away;
- an in-memory SQLite database gets a key that lives as long as it does;
- PostgreSQL has no key, and storing a secret is refused (`secret_keys_missing`): a
  production database is never given a key that sits beside it by accident.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import URL, make_url

from creditgate.domain.errors import Unavailable
from creditgate.settings import Settings

ENV_KEYS = "CREDITGATE_SECRET_KEYS"
SEALED_PREFIX = "fernet:"
KEY_FILE_SUFFIX = ".keys"

log = logging.getLogger("creditgate.secrets")


class SecretKeysMissing(Unavailable):
    """No key to seal secrets with (PostgreSQL without CREDITGATE_SECRET_KEYS)."""

    code = "secret_keys_missing"


class SecretUnreadable(Unavailable):
    """A stored secret that none of the configured keys opens (its key was dropped)."""

    code = "secret_unreadable"


def generate_key() -> str:
    """A new Fernet key: 32 random bytes, URL-safe base64."""
    return Fernet.generate_key().decode()


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def parse_keys(text: str, source: str) -> list[str]:
    """Keys from `a,b` or from a file of one key a line (`#` starts a comment)."""
    keys = [
        part.strip()
        for line in text.splitlines()
        for part in line.split("#", 1)[0].split(",")
        if part.strip()
    ]
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"{source}: key {number} is not a Fernet key (32 bytes, URL-safe base64); "
                "make one with `creditgate secrets generate-key`"
            ) from None
    return keys


def key_file_for(url: str | URL) -> Path | None:
    """Where an SQLite file database keeps its keys; None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    path = Path(database).resolve()
    return path.with_name(path.name + KEY_FILE_SUFFIX)


class SecretKeys:
    """The keys secrets are sealed with: given, or kept in a key file read when first needed."""

    def __init__(
        self, keys: Sequence[str] = (), *, key_file: Path | None = None, source: str = ""
    ) -> None:
        self._keys = list(keys)
        self.key_file = key_file
        self.source = source or ("key file" if key_file else "given keys" if keys else "none")
        self._lock = threading.Lock()
        self._fernet: MultiFernet | None = MultiFernet([Fernet(k) for k in keys]) if keys else None

    @classmethod
    def for_url(cls, url: str | URL, environ: Mapping[str, str] | None = None) -> SecretKeys:
        """The keys for a database: the environment's, else its key file, else none."""
        if environ is None:
            keys = Settings().secret_keys
            configured = keys.get_secret_value().strip() if keys else ""
        else:
            configured = environ.get(ENV_KEYS, "").strip()
        if configured:
            return cls(parse_keys(configured, ENV_KEYS), source=ENV_KEYS)
        key_file = key_file_for(url)
        if key_file is not None:
            return cls(key_file=key_file, source=f"key file {key_file}")
        if make_url(url).get_backend_name() == "sqlite":
            return cls([generate_key()], source="a key kept in memory with the database")
        return cls(source="none")

    @property
    def configured(self) -> bool:
        """Whether a secret can be sealed (a key file counts: it is made when first needed)."""
        return bool(self._keys) or self.key_file is not None

    def describe(self) -> str:
        if self.key_file is not None:
            return f"secrets sealed with the key file {self.key_file}"
        if self._keys:
            return f"secrets sealed with {self.source} ({len(self._keys)} key(s))"
        return f"no {ENV_KEYS}: storing secrets is refused"

    def seal(self, plaintext: str) -> str:
        return SEALED_PREFIX + self._multi(create=True).encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        """The plaintext of a stored secret. One stored before secrets were sealed is returned
        as it is (`creditgate secrets rotate` seals it)."""
        if not is_sealed(stored):
            return stored
        token = stored.removeprefix(SEALED_PREFIX).encode()
        try:
            return self._multi().decrypt(token).decode()
        except InvalidToken:
            pass
        if self.key_file is not None and self._reload():
            # `secrets rotate --new-key` may have put a new key in front since it was read.
            try:
                return self._multi().decrypt(token).decode()
            except InvalidToken:
                pass
        raise SecretUnreadable(
            f"a stored secret opens with none of the keys ({self.source}): "
            "was a key dropped before `creditgate secrets rotate`?"
        )

    def reseal(self, stored: str) -> str:
        """The same secret sealed under the newest key (sealing one stored in plain text)."""
        if not is_sealed(stored):
            return self.seal(stored)
        token = stored.removeprefix(SEALED_PREFIX).encode()
        try:
            return SEALED_PREFIX + self._multi().rotate(token).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"a stored secret opens with none of the keys ({self.source})"
            ) from None

    def add_key(self) -> str:
        """Put a new key in front of the key file's (then `reseal` every stored secret)."""
        if self.key_file is None:
            raise ValueError(
                f"the keys come from {self.source}: put a new key (`creditgate secrets "
                f"generate-key`) in front of {ENV_KEYS} on every server, then rotate"
            )
        with self._lock:
            old = self._read_file() if self.key_file.exists() else []
            key = generate_key()
            _write_key_file(self.key_file, [key, *old])
            self._keys = [key, *old]
            self._fernet = MultiFernet([Fernet(k) for k in self._keys])
        return key

    def _multi(self, *, create: bool = False) -> MultiFernet:
        if self._fernet is not None:
            return self._fernet
        with self._lock:
            if self._fernet is None:
                if self.key_file is None:
                    raise SecretKeysMissing(
                        f"secrets cannot be stored: the operator has not set {ENV_KEYS}"
                    )
                if not self.key_file.exists():
                    if not create:
                        raise SecretUnreadable(f"the key file {self.key_file} is missing")
                    _create_key_file(self.key_file)
                self._keys = self._read_file()
                self._fernet = MultiFernet([Fernet(k) for k in self._keys])
            return self._fernet

    def _reload(self) -> bool:
        assert self.key_file is not None
        with self._lock:
            keys = self._read_file()
            if keys == self._keys:
                return False
            self._keys = keys
            self._fernet = MultiFernet([Fernet(k) for k in keys])
            return True

    def _read_file(self) -> list[str]:
        assert self.key_file is not None
        keys = parse_keys(self.key_file.read_text(), str(self.key_file))
        if not keys:
            raise SecretUnreadable(f"the key file {self.key_file} holds no key")
        return keys


def _create_key_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    with os.fdopen(fd, "w") as out:
        out.write(_key_file_text([generate_key()]))
    log.warning(
        "no CREDITGATE_SECRET_KEYS: made a key file beside the database to seal secrets with; "
        "keep it with the database but out of its backups, or set CREDITGATE_SECRET_KEYS",
        extra={"key_file": str(path)},
    )


def _write_key_file(path: Path, keys: list[str]) -> None:
    fresh = path.with_name(path.name + ".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(_key_file_text(keys))
        out.flush()
        os.fsync(out.fileno())
    os.replace(fresh, path)


def _key_file_text(keys: list[str]) -> str:
    header = (
        "# creditgate's keys for the secrets stored in the database beside this file.\n"
        "# Newest first; losing this file loses every stored webhook and provider secret.\n"
    )
    return header + "".join(f"{k}\n" for k in keys)
