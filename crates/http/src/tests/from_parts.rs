//! `request_from_parts` (an HTTP/2 request's parts made into a request head without
//! parsing) against `parse_request` on the HTTP/1.1 text the parts stand for: the same head,
//! field for field, or the same refusal status.

use crate::{parse_request, request_from_parts, Limits, Parsed, RequestHead};

type Parts<'a> = (&'a [u8], &'a [u8], Vec<(&'a [u8], &'a [u8])>);

fn text((method, target, fields): &Parts<'_>) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(method);
    t.extend_from_slice(b" ");
    t.extend_from_slice(target);
    t.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in fields {
        t.extend_from_slice(n);
        t.extend_from_slice(b": ");
        t.extend_from_slice(v);
        t.extend_from_slice(b"\r\n");
    }
    t.extend_from_slice(b"\r\n");
    t
}

fn both(
    parts: &Parts<'_>,
    limits: &Limits,
) -> (Result<RequestHead, u16>, Result<RequestHead, u16>) {
    let made =
        request_from_parts(parts.0, parts.1, parts.2.iter().copied(), limits).map_err(|e| e.status);
    let parsed = match parse_request(&text(parts), limits) {
        Ok(Parsed::Complete(h)) => Ok(h),
        Ok(Parsed::Partial) => Err(0),
        Err(e) => Err(e.status),
    };
    (made, parsed)
}

#[test]
fn made_heads_are_the_parsed_heads() {
    let limits = Limits::default();
    let long = vec![b'a'; 300];
    let cases: Vec<Parts<'_>> = vec![
        (b"GET", b"/", vec![(b"host", b"a.example")]),
        (
            b"POST",
            b"/api/v1/items?x=1&y=%20",
            vec![
                (b"host", b"a.example:8443"),
                (b"content-length", b"12"),
                (b"content-type", b"application/json"),
                (b"cookie", b"a=1; b=2"),
                (b"x-empty", b""),
                (b"x-long", &long),
            ],
        ),
        (
            b"PUT",
            b"/up",
            vec![(b"host", b"h"), (b"transfer-encoding", b"chunked")],
        ),
        (
            b"GET",
            b"/ws",
            vec![
                (b"host", b"h"),
                (b"connection", b"upgrade"),
                (b"upgrade", b"websocket"),
                (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        ),
        (b"OPTIONS", b"*", vec![(b"host", b"h")]),
        (
            b"PROPFIND",
            b"/dav",
            vec![(b"host", b"h"), (b"expect", b"100-continue")],
        ),
        (
            b"GET",
            "/caf\u{e9}".as_bytes(),
            vec![(b"host", b"h"), (b"x-obs", b"\xe9t\xe9")],
        ),
    ];
    for parts in &cases {
        let (made, parsed) = both(parts, &limits);
        let made =
            made.unwrap_or_else(|s| panic!("{:?}: refused {s}", String::from_utf8_lossy(parts.1)));
        let parsed = parsed.unwrap_or_else(|s| panic!("parse refused {s}"));
        assert_eq!(made, parsed, "{:?}", String::from_utf8_lossy(parts.1));
        assert_eq!(made.path(), parsed.path());
        assert_eq!(made.host(), parsed.host());
        assert_eq!(made.body, parsed.body);
    }
}

#[test]
fn made_heads_are_refused_as_parsed_heads_are() {
    let limits = Limits::default();
    let cases: Vec<Parts<'_>> = vec![
        (b"GET", b"/", vec![]),                                      // no Host: 400
        (b"GET", b"/", vec![(b"host", b"a"), (b"host", b"b")]),      // two: 400
        (b"GET", b"/", vec![(b"host", b"a b")]),                     // bad Host: 400
        (b"GET", b"/", vec![(b"host", b"a"), (b"x", b"a\rb")]),      // CR: 400
        (b"GET", b"/", vec![(b"host", b"a"), (b"x", b"a\0b")]),      // NUL: 400
        (b"GET", b"/", vec![(b"host", b"a"), (b"x y", b"v")]),       // name: 400
        (b"GET", b"/", vec![(b"host", b"a"), (b"expect", b"gzip")]), // 417
        (
            b"POST",
            b"/",
            vec![(b"host", b"a"), (b"content-length", b"1, 2")],
        ),
        (
            b"POST",
            b"/",
            vec![
                (b"host", b"a"),
                (b"content-length", b"3"),
                (b"transfer-encoding", b"chunked"),
            ],
        ),
        (b"G T", b"/", vec![(b"host", b"a")]),
        (b"GET", b"/a b", vec![(b"host", b"a")]),
    ];
    for parts in &cases {
        let (made, parsed) = both(parts, &limits);
        let parsed = parsed.err().unwrap_or_else(|| panic!("parsed: {parts:?}"));
        assert_eq!(made.err(), Some(parsed), "{parts:?}");
    }
    // Limits: too many fields, a head too large.
    let small = Limits {
        max_headers: 4,
        ..Limits::default()
    };
    let mut many: Vec<(&[u8], &[u8])> = vec![(b"host", b"a")];
    many.extend(std::iter::repeat_n((&b"x-a"[..], &b"1"[..]), 6));
    let (made, parsed) = both(&(b"GET", b"/", many), &small);
    assert_eq!(made.err(), Some(431));
    assert_eq!(parsed.err(), Some(431));
    let big = vec![b'v'; 2000];
    let tiny = Limits {
        max_head: 1024,
        ..Limits::default()
    };
    let made = request_from_parts(
        b"GET",
        b"/",
        [(&b"host"[..], &b"a"[..]), (b"x", &big)].into_iter(),
        &tiny,
    );
    assert_eq!(made.err().map(|e| e.status), Some(431));
}
