"""API keys: `DOCSYNC_SERVE_API_KEYS` (comma-separated) and/or the file named by
`DOCSYNC_SERVE_API_KEYS_FILE` (one key per line, `#` comments).

A presented key is hashed and compared with the SHA-256 of every configured key through
`hmac.compare_digest`, without stopping at a match: equal lengths and a fixed amount of work,
so the timing tells neither which key matched nor how long keys are. Keys are never logged;
logs, metrics and rate limits name a key by a short fingerprint of its hash.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from engine.exceptions import ConfigError
from engine.settings import Settings

MIN_KEY_LENGTH = 16


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def fingerprint(digest: bytes) -> str:
    return "key-" + digest.hex()[:8]


@dataclass(frozen=True, slots=True)
class ApiKeys:
    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, keys: list[str]) -> ApiKeys:
        short = [n for n, k in enumerate(keys, 1) if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ConfigError(
                f"API key(s) number {', '.join(map(str, short))} are shorter than"
                f" {MIN_KEY_LENGTH} characters: use long random keys"
                " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return cls(tuple(dict.fromkeys(_digest(k) for k in keys)))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        keys: list[str] = []
        if settings.serve.api_keys is not None:
            keys += [k.strip() for k in settings.serve.api_keys.get_secret_value().split(",")]
        if settings.serve.api_keys_file:
            path = Path(settings.serve.api_keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    "invalid setting serve.api_keys_file [DOCSYNC_SERVE_API_KEYS_FILE]:"
                    f" cannot read {path}: {exc.strerror}"
                ) from None
            keys += [line.strip() for line in text.splitlines() if not line.startswith("#")]
        keys = [k for k in keys if k]
        if not keys:
            raise ConfigError(
                "the HTTP API needs at least one API key: set DOCSYNC_SERVE_API_KEYS"
                " (comma-separated) or DOCSYNC_SERVE_API_KEYS_FILE, or turn the API off"
                " (DOCSYNC_SERVE_API=false)"
            )
        return cls.of(keys)

    def identify(self, presented: str | None) -> str | None:
        """The fingerprint of the configured key equal to `presented`, or None."""
        if not presented:
            return None
        given = _digest(presented)
        match = b""
        for digest in self.digests:
            if hmac.compare_digest(given, digest):
                match = digest
        return fingerprint(match) if match else None
