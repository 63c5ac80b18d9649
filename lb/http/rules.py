"""The request-head rules of RFC 9112 that llhttp leaves to its user, and what breaking each
costs the client (a status, then a closed connection).

llhttp already refuses what cannot be parsed unambiguously (Content-Length with
Transfer-Encoding, duplicated or malformed lengths, obs-fold, bare CR or LF, a chunked
coding that is not final). It accepts versions 0.9 and 2.0, any number of header fields, two
``Host`` fields or none, codings it cannot decode and any request target; the checks here
close those gaps. They run inside the connection's one pass over the head, with no allocation
unless a rule is broken.
"""

from __future__ import annotations

from typing import Final


class Refused(Exception):
    """A request head breaks a rule: answer ``status`` with ``code`` and close."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


Rule = tuple[int, str, str]

TOO_MANY_HEADERS: Final[Rule] = (431, "too_many_headers", "too many request header fields")
TWO_HOSTS: Final[Rule] = (400, "bad_request", "more than one Host header")  # section 3.2
_NO_HOST: Final[Rule] = (400, "bad_request", "an HTTP/1.1 request needs a Host header")
_VERSION: Final[Rule] = (505, "http_version_not_supported", "only HTTP/1.0 and 1.1 are spoken")
_CODING: Final[Rule] = (501, "not_implemented", "the only transfer coding taken is chunked")
_NOT_FINAL: Final[Rule] = (400, "bad_request", "chunked is not the final transfer coding")
_TE_IN_10: Final[Rule] = (400, "bad_request", "Transfer-Encoding in an HTTP/1.0 request")
_TARGET: Final[Rule] = (400, "bad_request", "malformed request target")

# After an Upgrade request's head, llhttp hands its body over as the new protocol's bytes; a
# head of the same framing in front of them makes llhttp parse them as the body they are.
_LENGTH_HEAD: Final = b"POST / HTTP/1.1\r\nHost: _\r\nContent-Length: %d\r\n\r\n"
_CHUNKED_HEAD: Final = b"POST / HTTP/1.1\r\nHost: _\r\nTransfer-Encoding: chunked\r\n\r\n"


def check_transfer_encoding(value: bytes) -> None:
    """A request's ``Transfer-Encoding`` must be exactly ``chunked``: section 6.3 (4) refuses
    a final coding other than chunked (400), section 6.1 lets a server refuse codings it
    cannot decode (501) — and the LB decodes none."""
    coding = value.strip().lower()
    if coding != b"chunked":
        final = coding.rsplit(b",", 1)[-1].strip() == b"chunked"
        raise Refused(*(_CODING if final else _NOT_FINAL))


def check_head(version: str, method: str, target: bytes, has_host: bool, chunked: bool) -> None:
    """The rules a whole head must keep; raises :class:`Refused`."""
    if version != "1.1" and version != "1.0":
        raise Refused(*_VERSION)  # section 2.6: a version the LB does not speak
    if not has_host and version == "1.1":
        raise Refused(*_NO_HOST)  # section 3.2
    if chunked and version == "1.0":
        raise Refused(*_TE_IN_10)  # section 6.1: faulty framing
    if target[:1] != b"/" and not (
        (target == b"*" and method == "OPTIONS") or target.startswith((b"http://", b"https://"))
    ):
        raise Refused(*_TARGET)  # section 3.2: origin, absolute or (OPTIONS) asterisk form


def body_framing_head(chunked: bool, content_length: int | None) -> bytes:
    """A head of the given framing, to put in front of an Upgrade request's body."""
    return _CHUNKED_HEAD if chunked else _LENGTH_HEAD % (content_length or 0)
