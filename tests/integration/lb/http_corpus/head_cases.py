"""Corpus: request lines, header fields, Host, pipelining after errors, Expect and upgrades."""

from __future__ import annotations

from tests.integration.lb.http_corpus.cases import (
    CHUNKED,
    GET_A,
    HELLO,
    SMUGGLED,
    Case,
    get,
    post,
)

HEADS: tuple[Case, ...] = (
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
        get(extra=b"X-A: 1\r2\r\n"),
        (400,),
        True,
    ),
    Case(
        "nul_value",
        "RFC 9110 §5.5: NUL in a field value",
        get(extra=b"X-A: 1\x002\r\n"),
        (400,),
        True,
    ),
    Case("space_in_name", "§5.1: a field name is a token", get(extra=b"X A: 1\r\n"), (400,), True),
    Case(
        "http_10",
        "§9.3: HTTP/1.0 without keep-alive closes",
        b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
        (200,),
        True,
        (GET_A,),
    ),
    Case(
        "http_10_keep_alive",
        "§9.3: HTTP/1.0 keep-alive stays open",
        b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        (200,),
        False,
        (GET_A,),
    ),
    Case(
        "http_10_no_host",
        "§3.2: Host is required of HTTP/1.1 only",
        b"GET /a HTTP/1.0\r\n\r\n",
        (200,),
        True,
        (GET_A,),
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
        get() + b"GET /b HTTP/1.1\r\nBad Header\r\n\r\n" + get(b"/c"),
        (200, 400),
        True,
        (GET_A,),
    ),
    Case(
        "error_in_body_then_pipelined",
        "§7.1: a broken chunk ends the connection",
        post(CHUNKED, b"zz\r\nhello\r\n0\r\n\r\n") + get(b"/c"),
        (400,),
        True,
    ),
    # -- Expect and upgrades -----------------------------------------------------------------
    Case(
        "expect_continue",
        "RFC 9110 §10.1.1: the body follows Expect: 100-continue",
        post(b"Expect: 100-continue\r\nContent-Length: 5\r\n", b"hello"),
        (200,),
        False,
        (HELLO,),
    ),
    Case(
        "upgrade_with_body",
        "RFC 9110 §7.8: the body of an Upgrade request is forwarded",
        post(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n",
            b"hello" + SMUGGLED,
        ),
        (200, 200),
        False,
        (HELLO, (b"GET", b"/smuggled", b"")),
    ),
    Case(
        "upgrade_with_chunked_body",
        "RFC 9110 §7.8: a chunked body too",
        post(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n" + CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"
        ),
        (200,),
        False,
        (HELLO,),
    ),
)
