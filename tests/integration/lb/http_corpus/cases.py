"""The smuggling and conformance corpus: what a client or a worker sends, and what must happen.

Each case names the rule it checks (RFC 9112 unless said otherwise) and its outcome: the final
statuses the client gets, in order; whether the connection is then closed (if not, the test
sends one more request on it, which must be answered as itself: the framing is still in
step); and exactly which requests reach the worker (method, target, body, each framed by one
``Content-Length`` or by ``chunked``). Response cases script the worker's raw answer to
``GET /r`` (the ``reply`` bytes); a bad response is the worker's fault, not the client's,
so the client gets a 502 on a connection that stays in step, and the worker's connection is
closed (the probe then reaches the worker on a new one). The cases draw on HAProxy's
``reg-tests/http-messaging`` and the published request-smuggling research (CL.TE, TE.CL,
TE.TE obfuscations).
"""

from __future__ import annotations

from dataclasses import dataclass

Forwarded = tuple[bytes, bytes, bytes]  # method, target, body as the worker must receive them


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    send: bytes
    statuses: tuple[int, ...]
    closed: bool
    forwarded: tuple[Forwarded, ...] = ()
    reply: bytes = b""  # the worker's raw answer to GET /r (response cases)
    worker_gets: tuple[bytes, ...] = ()  # header lines the first forwarded request carries
    client_gets: tuple[bytes, ...] = ()  # bytes the client's response must contain
    client_never: tuple[bytes, ...] = ()  # bytes that must not reach the client
    fresh: bool = False  # the LB closed the worker's connection: the probe goes on a new one


def _get(target: bytes = b"/a", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (target, extra)


def _post(extra: bytes, body: bytes = b"") -> bytes:
    return b"POST /a HTTP/1.1\r\nHost: h\r\n%s\r\n%s" % (extra, body)


_GET_A: Forwarded = (b"GET", b"/a", b"")
_HELLO: Forwarded = (b"POST", b"/a", b"hello")
_SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"

REQUESTS: tuple[Case, ...] = (
    # -- the baseline --------------------------------------------------------------------------
    Case("get", "§3: a request line and fields", _get(), (200,), False, (_GET_A,)),
    Case(
        "post_length",
        "§6.2: Content-Length frames the body",
        _post(b"Content-Length: 5\r\n", b"hello"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "post_chunked",
        "§7.1: chunked frames the body",
        _post(_CHUNKED, b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "pipelined",
        "§9.3.2: pipelined requests are answered in order",
        _get() + _post(b"Content-Length: 5\r\n", b"hello"),
        (200, 200),
        False,
        (_GET_A, _HELLO),
    ),
    # -- Connection may not remove framing or Host (RFC 9110 §7.6.1) -------------------------
    Case(
        "connection_names_content_length",
        "RFC 9110 §7.6.1: framing is never hop-by-hop",
        _post(
            b"Connection: keep-alive, Content-Length\r\nContent-Length: 5\r\n", b"hello" + _SMUGGLED
        ),
        (200, 200),
        False,
        (_HELLO, (b"GET", b"/smuggled", b"")),
    ),
    Case(
        "connection_names_transfer_encoding",
        "RFC 9110 §7.6.1: framing is never hop-by-hop",
        _post(b"Connection: Transfer-Encoding\r\n" + _CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "connection_names_host",
        "RFC 9110 §7.6.1, §7.2: Host is never hop-by-hop",
        _get(extra=b"Connection: Host\r\n"),
        (200,),
        False,
        (_GET_A,),
        worker_gets=(b"Host: h",),
    ),
    # -- CL.TE, TE.CL, TE.TE ------------------------------------------------------------------
    Case(
        "cl_and_te",
        "§6.3 (3): Content-Length with Transfer-Encoding is refused, closed",
        _post(b"Content-Length: 4\r\n" + _CHUNKED, b"0\r\n\r\n" + _SMUGGLED),
        (400,),
        True,
    ),
    Case(
        "te_and_cl",
        "§6.3 (3): in either order",
        _post(_CHUNKED + b"Content-Length: 40\r\n", b"0\r\n\r\n" + _SMUGGLED),
        (400,),
        True,
    ),
    Case(
        "te_xchunked",
        "§6.1, §6.3 (4): an unknown coding, chunked not final: 400",
        _post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "te_chunked_identity",
        "§6.3 (4): chunked is not the final coding",
        _post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "te_gzip_chunked",
        "§6.1: a request transfer coding the LB cannot decode: 501",
        _post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        (501,),
        True,
    ),
    Case(
        "te_twice",
        "§6.1: two Transfer-Encoding fields are one list: chunked, chunked",
        _post(_CHUNKED + _CHUNKED, b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "te_leading_space",
        "§5.1: OWS before a value is not part of it",
        _post(b"Transfer-Encoding:  chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "te_vertical_tab",
        "§6.1: chunked\\x0b is not chunked",
        _post(b"Transfer-Encoding: chunked\x0b\r\n", b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "te_space_before_colon",
        "§5.1: whitespace before the colon: 400",
        _post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "cl_tab_before_colon",
        "§5.1: whitespace before the colon: 400",
        _post(b"Content-Length\t: 5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "te_obs_fold",
        "§5.2: obs-fold is refused",
        _post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
        (400,),
        True,
    ),
    Case("obs_fold", "§5.2: obs-fold is refused", _get(extra=b"X-A: 1\r\n 2\r\n"), (400,), True),
    Case(
        "te_underscore",
        "§5.1: Transfer_Encoding is just a field; the body is the next request",
        _post(b"Transfer_Encoding: chunked\r\n", b"0\r\n\r\n"),
        (200, 400),
        True,
        ((b"POST", b"/a", b""),),
    ),
    # -- Content-Length variants -------------------------------------------------------------
    Case(
        "cl_twice_same",
        "§6.3 (5): duplicated Content-Length is refused",
        _post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "cl_twice_different",
        "§6.3 (5): conflicting Content-Length",
        _post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        (400,),
        True,
    ),
    Case(
        "cl_list",
        "§6.3 (5): a Content-Length list",
        _post(b"Content-Length: 5, 5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "cl_plus",
        "RFC 9110 §8.6: Content-Length is 1*DIGIT",
        _post(b"Content-Length: +5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "cl_negative",
        "RFC 9110 §8.6: Content-Length is 1*DIGIT",
        _post(b"Content-Length: -1\r\n"),
        (400,),
        True,
    ),
    Case(
        "cl_hex",
        "RFC 9110 §8.6: Content-Length is decimal",
        _post(b"Content-Length: 0x5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "cl_leading_zeros",
        "RFC 9110 §8.6: leading zeros are digits",
        _post(b"Content-Length: 005\r\n", b"hello"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "cl_whitespace",
        "§5.1: OWS around the value",
        _post(b"Content-Length:  5 \r\n", b"hello"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "cl_inner_space",
        "RFC 9110 §8.6: 5 5 is not a number",
        _post(b"Content-Length: 5 5\r\n", b"hello"),
        (400,),
        True,
    ),
    Case(
        "cl_overflow",
        "§6.3 (5): a length that overflows",
        _post(b"Content-Length: 99999999999999999999999\r\n"),
        (400,),
        True,
    ),
    # -- chunked body edge cases (§7.1) ------------------------------------------------------
    Case(
        "chunk_size_leading_zeros",
        "§7.1: chunk-size is 1*HEXDIG",
        _post(_CHUNKED, b"0005\r\nhello\r\n0\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "chunk_size_upper_hex",
        "§7.1: HEXDIG is case-insensitive",
        _post(_CHUNKED, b"A\r\nhellohello\r\n0\r\n\r\n"),
        (200,),
        False,
        ((b"POST", b"/a", b"hellohello"),),
    ),
    Case(
        "chunk_size_overflow",
        "§7.1.1: a chunk size that overflows",
        _post(_CHUNKED, b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_size_0x",
        "§7.1: 0x is not hex digits",
        _post(_CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_size_negative",
        "§7.1: no sign",
        _post(_CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_extension",
        "§7.1.1: extensions are ignored, never forwarded",
        _post(_CHUNKED, b"5;name=value\r\nhello\r\n0;last\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "chunk_extension_quoted",
        "§7.1.1: a quoted extension value",
        _post(_CHUNKED, b'5;name="a;b"\r\nhello\r\n0\r\n\r\n'),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "chunk_extension_huge",
        "§7.1.1: a long extension is discarded, not buffered",
        _post(_CHUNKED, b"5;x=" + b"a" * 8000 + b"\r\nhello\r\n0\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "chunk_extension_bare_lf",
        "§7.1.1, §2.2: a bare LF inside an extension",
        _post(_CHUNKED, b"5;x\nhello\r\n0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_missing_crlf",
        "§7.1: chunk-data is followed by CRLF",
        _post(_CHUNKED, b"5\r\nhelloX\r\n0\r\n\r\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_bare_lf",
        "§2.2: chunk lines end with CRLF",
        _post(_CHUNKED, b"5\nhello\n0\n\n"),
        (400,),
        True,
    ),
    Case(
        "chunk_trailers_dropped",
        "§7.1.2: trailers are not headers; the LB drops them",
        _post(_CHUNKED, b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
        (200,),
        False,
        (_HELLO,),
    ),
    # -- request line, fields, Host (§2, §3, §5) ---------------------------------------------
    Case(
        "http_20",
        "§2.6: a major version the LB does not speak: 505",
        b"GET /a HTTP/2.0\r\nHost: h\r\n\r\n",
        (505,),
        True,
    ),
    Case(
        "http_09",
        "§2.6: HTTP/0.9 is not spoken: 505",
        b"GET /a HTTP/0.9\r\nHost: h\r\n\r\n",
        (505,),
        True,
    ),
    Case(
        "http_12",
        "§2.3: a malformed version: 400",
        b"GET /a HTTP/1.2\r\nHost: h\r\n\r\n",
        (400,),
        True,
    ),
    Case(
        "http_lowercase",
        "§2.3: HTTP-name is case-sensitive",
        b"GET /a http/1.1\r\nHost: h\r\n\r\n",
        (400,),
        True,
    ),
    Case("no_host", "§3.2: HTTP/1.1 without Host: 400", b"GET /a HTTP/1.1\r\n\r\n", (400,), True),
    Case(
        "two_hosts",
        "§3.2: two Host fields: 400",
        b"GET /a HTTP/1.1\r\nHost: h\r\nHost: evil\r\n\r\n",
        (400,),
        True,
    ),
    Case(
        "bare_lf_head",
        "§2.2: a bare LF line ending is refused",
        b"GET /a HTTP/1.1\nHost: h\n\n",
        (400,),
        True,
    ),
    Case(
        "bare_cr_value",
        "§2.2: a bare CR in a field value",
        _get(extra=b"X-A: 1\r2\r\n"),
        (400,),
        True,
    ),
    Case(
        "nul_value",
        "RFC 9110 §5.5: NUL in a field value",
        _get(extra=b"X-A: 1\x002\r\n"),
        (400,),
        True,
    ),
    Case("space_in_name", "§5.1: a field name is a token", _get(extra=b"X A: 1\r\n"), (400,), True),
    Case(
        "http_10",
        "§9.3: HTTP/1.0 without keep-alive closes",
        b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
        (200,),
        True,
        (_GET_A,),
    ),
    Case(
        "http_10_keep_alive",
        "§9.3: HTTP/1.0 keep-alive stays open",
        b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        (200,),
        False,
        (_GET_A,),
    ),
    Case(
        "http_10_no_host",
        "§3.2: Host is required of HTTP/1.1 only",
        b"GET /a HTTP/1.0\r\n\r\n",
        (200,),
        True,
        (_GET_A,),
    ),
    Case(
        "http_10_chunked",
        "§6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing",
        b"POST /a HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        (400,),
        True,
    ),
    Case(
        "target_asterisk_get",
        "§3.2.4: the asterisk form is for OPTIONS only",
        b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        (400,),
        True,
    ),
    Case(
        "target_relative",
        "§3.2: a request target is origin, absolute, authority or asterisk form",
        b"GET admin HTTP/1.1\r\nHost: h\r\n\r\n",
        (400,),
        True,
    ),
    Case(
        "options_asterisk",
        "§3.2.4: OPTIONS * is forwarded",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        (200,),
        False,
        ((b"OPTIONS", b"*", b""),),
    ),
    # -- pipelining after an error -----------------------------------------------------------
    Case(
        "error_then_pipelined",
        "§9.3.2: nothing after a refused request is read",
        _get() + b"GET /b HTTP/1.1\r\nBad Header\r\n\r\n" + _get(b"/c"),
        (200, 400),
        True,
        (_GET_A,),
    ),
    Case(
        "error_in_body_then_pipelined",
        "§7.1: a broken chunk ends the connection",
        _post(_CHUNKED, b"zz\r\nhello\r\n0\r\n\r\n") + _get(b"/c"),
        (400,),
        True,
    ),
    # -- Expect and upgrades -----------------------------------------------------------------
    Case(
        "expect_continue",
        "RFC 9110 §10.1.1: the body follows Expect: 100-continue",
        _post(b"Expect: 100-continue\r\nContent-Length: 5\r\n", b"hello"),
        (200,),
        False,
        (_HELLO,),
    ),
    Case(
        "upgrade_with_body",
        "RFC 9110 §7.8: the body of an Upgrade request is forwarded",
        _post(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n",
            b"hello" + _SMUGGLED,
        ),
        (200, 200),
        False,
        (_HELLO, (b"GET", b"/smuggled", b"")),
    ),
    Case(
        "upgrade_with_chunked_body",
        "RFC 9110 §7.8: a chunked body too",
        _post(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n" + _CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"
        ),
        (200,),
        False,
        (_HELLO,),
    ),
)


def _reply(head: bytes, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + head + b"\r\n\r\n" + body


_R: Forwarded = (b"GET", b"/r", b"")

RESPONSES: tuple[Case, ...] = (
    Case(
        "response_length",
        "§6.2: the baseline",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=_reply(b"200 OK\r\nContent-Length: 2", b"ok"),
        client_gets=(b"\r\n\r\nok",),
    ),
    Case(
        "response_connection_names_content_length",
        "RFC 9110 §7.6.1: a worker's Connection cannot strip framing",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=_reply(b"200 OK\r\nConnection: Content-Length\r\nContent-Length: 2", b"ok"),
    ),
    Case(
        "response_connection_names_transfer_encoding",
        "RFC 9110 §7.6.1: a worker's Connection cannot strip framing",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=_reply(
            b"200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked",
            b"2\r\nok\r\n0\r\n\r\n",
        ),
    ),
    Case(
        "response_extra_bytes",
        "§6.3: bytes after a complete response are discarded",
        _get(b"/r"),
        (204,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"204 No Content") + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        client_never=(b"evil",),
    ),
    Case(
        "response_trailers",
        "§7.1.2: trailers never become headers",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=_reply(
            b"200 OK\r\nTransfer-Encoding: chunked",
            b"2\r\nok\r\n0\r\nSet-Cookie: s=1\r\nLocation: /threads/t1\r\n\r\n",
        ),
        client_never=(b"Set-Cookie", b"/threads/t1"),
    ),
    Case(
        "response_gzip_chunked",
        "§6.1: the LB re-frames chunked and keeps other codings",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=_reply(b"200 OK\r\nTransfer-Encoding: gzip, chunked", b"2\r\nok\r\n0\r\n\r\n"),
        client_gets=(b"Transfer-Encoding: gzip, chunked",),
    ),
    Case(
        "response_chunked_not_final",
        "§6.3 (4): chunked not final: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\nTransfer-Encoding: chunked, gzip", b"ok"),
    ),
    Case(
        "response_cl_and_te",
        "§6.3 (3): both framings: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
    ),
    Case(
        "response_cl_twice",
        "§6.3 (5): conflicting lengths: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\nContent-Length: 2\r\nContent-Length: 3", b"ok!"),
    ),
    Case(
        "response_obs_fold",
        "§5.2: a proxy refuses obs-fold in a response: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2", b"ok"),
    ),
    Case(
        "response_bare_lf",
        "§2.2: a bare LF in a response head: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    ),
    Case(
        "response_bad_status",
        "§4: a status is three digits: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"2000 OK\r\nContent-Length: 2", b"ok"),
    ),
    Case(
        "response_101_unasked",
        "RFC 9110 §15.2.2: a 101 nobody asked for: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x"),
    ),
    Case(
        "response_huge_head",
        "a response head over the LB's cap: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\nX-Big: " + b"b" * 200_000 + b"\r\nContent-Length: 2", b"ok"),
    ),
    Case(
        "response_many_fields",
        "a response with more fields than the LB's cap: 502",
        _get(b"/r"),
        (502,),
        False,
        (_R,),
        fresh=True,
        reply=_reply(b"200 OK\r\n" + b"X-A: 1\r\n" * 1000 + b"Content-Length: 2", b"ok"),
    ),
    Case(
        "response_interim",
        "§9.3: an interim 100 is not the response",
        _get(b"/r"),
        (200,),
        False,
        (_R,),
        reply=b"HTTP/1.1 100 Continue\r\n\r\n" + _reply(b"200 OK\r\nContent-Length: 2", b"ok"),
    ),
)
