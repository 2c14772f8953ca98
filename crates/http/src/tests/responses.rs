//! Response heads: body framing per RFC 9112 §6.3, keep-alive, and 502 for anything we
//! cannot trust.

use crate::{
    parse_response, parse_response_bytes, BodyKind, HttpError, Limits, Parsed, ResponseHead,
    Version,
};

/// Every case through both entry points, which must agree (`parse_response_bytes` keeps a
/// slice of its buffer instead of a copy).
fn parse(input: &[u8], head: bool) -> Result<Parsed<ResponseHead>, HttpError> {
    let copied = parse_response(input, head, &Limits::default());
    let buf = bytes::Bytes::copy_from_slice(input);
    let shared = parse_response_bytes(&buf, head, &Limits::default());
    assert_eq!(copied, shared, "{:?}", String::from_utf8_lossy(input));
    if let Ok(Parsed::Complete(h)) = &shared {
        assert_eq!(
            h.raw.as_ptr(),
            buf.as_ptr(),
            "a slice of the buffer, not a copy"
        );
    }
    copied
}

fn ok(input: &[u8], head: bool) -> ResponseHead {
    match parse(input, head) {
        Ok(Parsed::Complete(r)) => r,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn framing_table() {
    use BodyKind::*;
    // (head, request was HEAD, body, keep_alive)
    let cases: &[(&str, bool, BodyKind, bool)] = &[
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
            false,
            Length(12),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            Length(0),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
            false,
            Length(7),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
            Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
            UntilClose,
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            false,
            UntilClose,
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            UntilClose,
            false,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", false, UntilClose, false),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            false,
            Length(5),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
            false,
            Length(5),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
            false,
            Length(5),
            true,
        ),
        ("HTTP/1.1 204 No Content\r\n\r\n", false, None, true),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
            false,
            None,
            true,
        ),
        (
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
            false,
            None,
            true,
        ),
        ("HTTP/1.1 100 Continue\r\n\r\n", false, None, true),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            false,
            None,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            true,
            None,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
            None,
            true,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", true, None, true),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n",
            false,
            Length(9),
            true,
        ),
        (
            "\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
            false,
            Length(1),
            true,
        ),
    ];
    for (input, head, body, keep_alive) in cases {
        let r = ok(input.as_bytes(), *head);
        assert_eq!((r.body, r.keep_alive), (*body, *keep_alive), "{input:?}");
        assert_eq!(r.len(), input.len());
    }
}

#[test]
fn untrustworthy_responses_are_502() {
    let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(16384));
    let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: 1\r\n".repeat(101));
    let cases: Vec<String> = vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            .into(),
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n".into(),
        "HTTP/1.1 600 Weird\r\n\r\n".into(),
        "HTTP/1.1 099 Low\r\n\r\n".into(),
        "HTTP/1.1 20 OK\r\n\r\n".into(),
        "HTTP/2.0 200 OK\r\n\r\n".into(),
        "HTTP/1.1 200 OK\nContent-Length: 1\n\n".into(),
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n".into(),
        "\n\nHTTP/1.1 200 OK\r\n\r\n".into(),
        "garbage\r\n\r\n".into(),
        huge,
        many,
    ];
    for input in &cases {
        match parse(input.as_bytes(), false) {
            Err(e) if e.status == 502 => {}
            other => panic!("{input:?}: want 502, got {other:?}"),
        }
    }
}

#[test]
fn fields_and_reason() {
    let input = b"HTTP/1.1 404 Not Found Here\r\nServer: x\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1";
    let r = ok(input, false);
    assert_eq!(r.status, 404);
    assert_eq!(r.version, Version::Http11);
    assert_eq!(r.reason(), "Not Found Here");
    assert_eq!(&input[r.len()..], b"abcHTTP/1.1");
    let fields: Vec<(&str, &[u8])> = r.headers().collect();
    assert_eq!(fields, [("Server", &b"x"[..]), ("Content-Length", b"3")]);
    assert_eq!(r.header("content-length"), Some(&b"3"[..]));
    assert!(!r.is_informational());
    assert_eq!(ok(b"HTTP/1.1 200\r\n\r\n", false).reason(), "");
    let obs = ok(b"HTTP/1.1 200 caf\xc3\xa9\r\n\r\n", false);
    assert_eq!(obs.reason(), "");
    assert_eq!(ok(&obs.raw, false), obs);
    assert!(ok(b"HTTP/1.1 103 Early Hints\r\n\r\n", false).is_informational());
}

#[test]
fn every_prefix_is_partial() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    for n in 0..input.len() {
        assert_eq!(parse(&input[..n], false), Ok(Parsed::Partial), "prefix {n}");
    }
    let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(20000));
    assert_eq!(parse(big.as_bytes(), false).map_err(|e| e.status), Err(502));
}

#[test]
fn interim_then_final() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let first = ok(input, false);
    assert!(first.is_informational());
    let second = ok(&input[first.len()..], false);
    assert_eq!((second.status, second.body), (200, BodyKind::Length(2)));
}
