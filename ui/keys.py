"""API keys for the HTTP API and MCP: created once, shown once, stored only as SHA-256 hashes.

A key reads ``zw_<id>_<secret>``: ``id`` names the key (for listing and revoking), ``secret`` is 32 random
bytes. Because the secret is random, a plain SHA-256 is as safe as a slow password hash (nobody can try
all 2^256 of them) and checking a request costs microseconds. The store is a JSON file written
atomically with mode 0600 (``api_keys_file``, default ``<index_dir>/../api_keys.json``); it is re-read
when it changes, so ``zhiwen apikey revoke`` takes effect on a running server at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from zhiwen.core.fsutil import atomic_write_text
from zhiwen.core.settings import Settings

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
PREFIX = "zw_"


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its id, role, hash of its secret, and when it was created or revoked."""

    key_id: str
    role: Role
    sha256: str
    name: str = ""
    created: str = ""
    revoked: str = ""

    def allows(self, role: Role) -> bool:
        """Whether this key may do what ``role`` needs (admin may do everything read may)."""
        return not self.revoked and (self.role == "admin" or role == "read")


def keys_path(settings: Settings) -> Path:
    """Where the key store of these settings lives."""
    if settings.api_keys_file:
        return Path(settings.api_keys_file)
    return Path(settings.index_dir).parent / "api_keys.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The API keys of one deployment, kept in ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int] | None, list[ApiKey]] = (None, [])

    def keys(self) -> list[ApiKey]:
        """Every key ever created (revoked ones included), re-read when the file changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._cached[0] != stamp:
                try:
                    rows = json.loads(self.path.read_text(encoding="utf-8"))
                    self._cached = (stamp, [ApiKey(**row) for row in rows])
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{self.path}: not a Zhiwen key store ({exc})") from None
            return self._cached[1]

    def active(self) -> bool:
        """Whether any unrevoked key exists (then every API request needs one)."""
        return any(not key.revoked for key in self.keys())

    def create(self, role: Role, name: str = "") -> tuple[ApiKey, str]:
        """A new key of ``role``: returns the stored record and the key itself (shown once, never stored)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        record = ApiKey(key_id, role, _digest(secret), name, _now())
        self._write([*self.keys(), record])
        return record, f"{PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> ApiKey:
        """Mark key ``key_id`` revoked; it stops working at the next request."""
        keys = self.keys()
        found = [k for k in keys if k.key_id == key_id]
        if not found:
            raise ValueError(f"no API key with id {key_id!r}; `zhiwen apikey list` shows the ids")
        revoked = ApiKey(**(asdict(found[0]) | {"revoked": found[0].revoked or _now()}))
        self._write([revoked if k.key_id == key_id else k for k in keys])
        return revoked

    def check(self, presented: str) -> ApiKey | None:
        """The live key ``presented`` is, or None when it is malformed, unknown or revoked."""
        if not presented.startswith(PREFIX):
            return None
        key_id, sep, secret = presented[len(PREFIX) :].partition("_")
        if not sep:
            return None
        digest = _digest(secret)
        for key in self.keys():
            if key.key_id == key_id and hmac.compare_digest(key.sha256, digest) and not key.revoked:
                return key
        return None

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps([asdict(k) for k in keys], ensure_ascii=False, indent=1))
        os.chmod(self.path, 0o600)
