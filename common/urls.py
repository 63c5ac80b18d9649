"""URLs as logs may show them."""

from __future__ import annotations


def redact(url: str) -> str:
    """``url`` with the password of its userinfo replaced by ``***`` (the user stays, so an
    operator can still tell which account is used): ``redis://u:pw@h/0`` → ``redis://u:***@h/0``.
    A URL without a password is returned unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return url
    return f"{scheme}{sep}{user}:***@{host}{slash}{path}"
