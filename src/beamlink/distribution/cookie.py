"""Cookies and challenges of the distribution handshake.

`digest` is MD5(cookie ++ decimal text of the challenge), as in dist_util:gen_digest/2.
Challenges come from `secrets` (a CSPRNG). `resolve_cookie` picks the cookie (`beamlink.settings`):
argument, then $BEAMLINK_COOKIE, then $RELEASE_COOKIE, then ~/.erlang.cookie, which is created
the way Erlang's auth module does when missing (20 random uppercase letters, mode 0400).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
from pathlib import Path

from beamlink.errors import ConfigurationError
from beamlink.settings import COOKIE

COOKIE_FILE_NAME = ".erlang.cookie"
GENERATED_COOKIE_LENGTH = 20


class CookieError(ConfigurationError, RuntimeError):
    """No usable cookie (unreadable or badly protected cookie file)."""


def digest(cookie: str, challenge: int) -> bytes:
    """The 16-byte digest a node proves it knows `cookie` with."""
    return hashlib.md5(
        cookie.encode("latin-1") + str(challenge).encode("ascii"), usedforsecurity=False
    ).digest()


def new_challenge() -> int:
    """A fresh 32-bit challenge from the operating system's CSPRNG."""
    return secrets.randbits(32)


def resolve_cookie(cookie: str | None = None, *, home: Path | None = None) -> str:
    """The cookie to use: `cookie`, $BEAMLINK_COOKIE, $RELEASE_COOKIE, or ~/.erlang.cookie.

    The precedence and the accepted values are `beamlink.settings.COOKIE`'s (`SettingsError` for
    a cookie that is not latin-1 or longer than 255 characters).
    """
    found = COOKIE.get(cookie)
    if found is not None:
        return found
    return read_or_create_cookie_file((home or Path.home()) / COOKIE_FILE_NAME)


def read_or_create_cookie_file(path: Path) -> str:
    """Read the cookie file (first line, whitespace stripped) or create it like Erlang does."""
    if not path.exists():
        generated = "".join(
            secrets.choice(string.ascii_uppercase) for _ in range(GENERATED_COOKIE_LENGTH)
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w", encoding="latin-1") as out:
            out.write(generated)
        return generated
    if path.stat().st_mode & 0o077:
        raise CookieError(f"cookie file {path} must be accessible only by its owner")
    text = path.read_text(encoding="latin-1").strip()
    if not text:
        raise CookieError(f"cookie file {path} is empty")
    return text.splitlines()[0].strip()
