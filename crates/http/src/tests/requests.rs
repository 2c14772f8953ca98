//! Request heads: malformed ones with the exact status, good ones with every field checked.

use crate::{parse_request, BodyKind, HttpError, Limits, Method, Parsed, RequestHead, Version};

fn parse(input: &[u8]) -> Result<Parsed<RequestHead>, HttpError> {
    parse_request(input, &Limits::default())
}

fn ok(input: &[u8]) -> RequestHead {
    match parse(input) {
        Ok(Parsed::Complete(head)) => head,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

/// Host header line reused by the cases.
const H: &str = "Host: example.com\r\n";

#[test]
fn malformed_requests_get_the_exact_status() {
    let long_uri = format!("GET /{} HTTP/1.1\r\n{H}\r\n", "a".repeat(8192));
    let long_uri_partial = format!("GET /{}", "a".repeat(8200));
    let huge_head = format!("GET / HTTP/1.1\r\n{H}X: {}\r\n\r\n", "a".repeat(16384));
    let huge_partial = format!("GET / HTTP/1.1\r\n{H}X: {}", "a".repeat(16384));
    let many_headers = format!("GET / HTTP/1.1\r\n{H}{}\r\n", "X: 1\r\n".repeat(100));
    let long_ext = format!("GET / HTTP/1.1\r\n{H}Expect: {}\r\n\r\n", "x".repeat(10));
    let cases: Vec<(String, u16)> = vec![
        // Content-Length and Transfer-Encoding.
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5, 6\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: +5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5 5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 0x10\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length:\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 18446744073709551616\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5,\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content_Length: 5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding:\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: ,chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked;q=1\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer_Encoding: chunked\r\n\r\n"), 400),
        // Field lines.
        (format!("GET / HTTP/1.1\r\n{H}X: a\r\n b\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\r\n\tb\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n {H}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\0b\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\rb\r\n\r\n"), 400),
        ("GET / HTTP/1.1\r\nHost : example.com\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}Content-Length : 5\r\n\r\n"), 400),
        ("GET / HTTP/1.1\nHost: example.com\n\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: b\n\r\n"), 400),
        (format!("GET / HTTP/1.1\n{H}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}NoColon\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}: empty-name\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X\0Y: 1\r\n\r\n"), 400),
        (format!("\nGET / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("\r\n\r\nGET / HTTP/1.1\r\n{H}\r\n"), 400),
        // Request line.
        (format!("GET /\r\n{H}\r\n"), 400),
        (format!("GET / HTTP/2.0\r\n{H}\r\n"), 505),
        (format!("GET / HTTP/0.9\r\n{H}\r\n"), 505),
        (format!("GET / HTTP/1.2\r\n{H}\r\n"), 505),
        (format!("GET / HTTP/3.0\r\n{H}\r\n"), 505),
        ("GET / HTTP/2".into(), 505),
        (format!("GET / HTTP/1.1x\r\n{H}\r\n"), 400),
        (format!("GET / http/1.1\r\n{H}\r\n"), 400),
        (format!("GET / HTTP/1.10\r\n{H}\r\n"), 400),
        (format!("GET / HTTP/x.1\r\n{H}\r\n"), 400),
        (format!("G(T / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GE\0T / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!(" GET / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET  / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET / HTTP/1.1 \r\n{H}\r\n"), 400),
        (format!("GET /a b HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET foo HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET * HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("CONNECT / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("CONNECT example.com HTTP/1.1\r\n{H}\r\n"), 400),
        ("GET http://u@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n".into(), 400),
        (format!("GET http://other.com/ HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET ftp://example.com/ HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET http:///x HTTP/1.1\r\n{H}\r\n"), 400),
        // Host.
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}{H}\r\n"), 400),
        (format!("GET / HTTP/1.0\r\n{H}host: other\r\n\r\n"), 400),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n".into(), 400),
        // Sizes.
        (long_uri, 414),
        (long_uri_partial, 414),
        (huge_head, 431),
        (huge_partial, 431),
        (many_headers, 431),
        // Expectations.
        (long_ext, 417),
        (format!("GET / HTTP/1.1\r\n{H}Expect: 100-continue, foo\r\n\r\n"), 417),
        (format!("GET / HTTP/1.1\r\n{H}Expect:\r\n\r\n"), 417),
        (format!("GET / HTTP/1.0\r\n{H}Expect: 200-ok\r\n\r\n"), 417),
    ];
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for (input, status) in &cases {
        match parse(input.as_bytes()) {
            Err(e) if e.status == *status => {}
            other => failures.push(format!("{input:?}: want {status}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn non_utf8_target_is_refused() {
    let input = b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse(input).map_err(|e| e.status), Err(400));
}

#[test]
fn simple_get() {
    let input =
        b"GET /a/b?x=1#frag HTTP/1.1\r\nHost: Example.com \r\nAccept: */*\r\nX-Empty:\r\n\r\n";
    let head = ok(input);
    assert_eq!(head.len(), input.len());
    assert_eq!(&head.raw[..], &input[..]);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.method_str(), "GET");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.target(), "/a/b?x=1#frag");
    assert_eq!(head.path(), "/a/b");
    assert_eq!(head.host(), Some("Example.com"));
    assert_eq!(head.body, BodyKind::None);
    assert!(head.keep_alive && !head.expect_continue && !head.upgrade);
    let fields: Vec<(&str, &[u8])> = head.headers().collect();
    assert_eq!(
        fields,
        [
            ("Host", &b"Example.com"[..]),
            ("Accept", b"*/*"),
            ("X-Empty", b"")
        ]
    );
    assert_eq!(head.header("accept"), Some(&b"*/*"[..]));
    assert_eq!(head.header("ACCEPT"), Some(&b"*/*"[..]));
    assert_eq!(head.header("x-empty"), Some(&b""[..]));
    assert_eq!(head.header("missing"), None);
}

#[test]
fn post_with_content_length_leaves_the_body() {
    let input = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let head = ok(input);
    assert_eq!(head.method, Method::Post);
    assert_eq!(head.body, BodyKind::Length(5));
    assert_eq!(&input[head.len()..], b"hello");
    let zero = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(zero.body, BodyKind::Length(0));
    assert!(zero.body.is_empty() && BodyKind::None.is_empty());
    assert!(!head.body.is_empty() && !BodyKind::Chunked.is_empty());
}

#[test]
fn identical_content_lengths_count_once() {
    let a = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(a.body, BodyKind::Length(5));
    let b = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n");
    assert_eq!(b.body, BodyKind::Length(5));
}

#[test]
fn chunked_post() {
    let input =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let head = ok(input);
    assert_eq!(head.body, BodyKind::Chunked);
    assert!(input[head.len()..].starts_with(b"5\r\n"));
    let gz = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(gz.body, BodyKind::Chunked);
}

#[test]
fn pipelined_requests() {
    let first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let second = "GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let both = format!("{first}{second}");
    let head = ok(both.as_bytes());
    assert_eq!(head.len(), first.len());
    assert_eq!(head.path(), "/1");
    assert!(head.keep_alive);
    let next = ok(&both.as_bytes()[head.len()..]);
    assert_eq!(next.len(), second.len());
    assert_eq!(next.path(), "/2");
    assert!(!next.keep_alive);
}

#[test]
fn http10_keep_alive_only_when_asked() {
    let plain = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(plain.version, Version::Http10);
    assert!(!plain.keep_alive);
    assert_eq!(plain.host(), None);
    let ka = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(ka.keep_alive);
    let both = ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(!both.keep_alive);
    let close11 = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n");
    assert!(!close11.keep_alive);
}

#[test]
fn expect_continue() {
    let head =
        ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 9\r\n\r\n");
    assert!(head.expect_continue);
    assert_eq!(head.method, Method::Put);
    let old = ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
    assert!(!old.expect_continue, "ignored in HTTP/1.0");
}

#[test]
fn upgrade_websocket() {
    let head = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert!(head.upgrade);
    assert_eq!(head.header("upgrade"), Some(&b"websocket"[..]));
    let no_token = ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert!(!no_token.upgrade);
    let no_field = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
    assert!(!no_field.upgrade);
    let old = ok(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert!(!old.upgrade);
}

#[test]
fn one_leading_crlf_is_part_of_the_head() {
    let input = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    let head = ok(input);
    assert_eq!(head.len(), input.len() - 4);
    assert!(head.raw.starts_with(b"\r\nGET"));
    assert_eq!(head.method_str(), "GET");
    assert_eq!(ok(&head.raw).len(), head.len());
}

#[test]
fn target_forms() {
    let abs = ok(b"GET http://Example.com:8080/p/q?x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    assert_eq!(abs.path(), "/p/q");
    assert_eq!(abs.host(), Some("Example.com:8080"));
    assert_eq!(abs.target(), "http://Example.com:8080/p/q?x");
    let bare = ok(b"GET HTTPS://a?x HTTP/1.0\r\n\r\n");
    assert_eq!(bare.path(), "/");
    assert_eq!(bare.host(), Some("a"));
    let star = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((star.method, star.path()), (Method::Options, "*"));
    let connect = ok(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n");
    assert_eq!(
        (connect.method, connect.path()),
        (Method::Connect, "a.com:443")
    );
    let v6 = ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    assert_eq!(v6.host(), Some("[::1]:80"));
    let empty_host = ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(empty_host.host(), Some(""));
}

#[test]
fn methods() {
    for (token, m) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PATCH", Method::Patch),
        ("TRACE", Method::Trace),
    ] {
        let head = ok(format!("{token} / HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(head.method, m);
        assert_eq!(m.as_str(), token);
        assert_eq!(head.method_str(), token);
    }
    let other = ok(b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (other.method, other.method_str()),
        (Method::Other, "PROPFIND")
    );
    assert_eq!(Method::Other.as_str(), "");
    assert_eq!(
        ok(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").method,
        Method::Other
    );
}

#[test]
fn obs_text_in_values_is_kept() {
    let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n");
    assert_eq!(head.header("x-name"), Some(&b"caf\xc3\xa9"[..]));
}

#[test]
fn every_prefix_of_a_good_head_is_partial() {
    let input = b"\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    for n in 0..input.len() {
        assert_eq!(parse(&input[..n]), Ok(Parsed::Partial), "prefix {n}");
    }
    assert_eq!(ok(input).len(), input.len());
}

#[test]
fn limits_are_inclusive() {
    let limits = Limits {
        max_head: 64,
        max_uri: 10,
        max_headers: 2,
    };
    let fit = b"GET /123456789 HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n";
    assert_eq!(fit.len(), 42);
    assert!(matches!(
        parse_request(fit, &limits),
        Ok(Parsed::Complete(_))
    ));
    let uri = b"GET /1234567890 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse_request(uri, &limits).map_err(|e| e.status), Err(414));
    let headers = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";
    assert_eq!(
        parse_request(headers, &limits).map_err(|e| e.status),
        Err(431)
    );
    let exact = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "a".repeat(32));
    assert_eq!(exact.len(), 64);
    assert!(matches!(
        parse_request(exact.as_bytes(), &limits),
        Ok(Parsed::Complete(_))
    ));
    let over = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "a".repeat(33));
    assert_eq!(
        parse_request(over.as_bytes(), &limits).map_err(|e| e.status),
        Err(431)
    );
    // Still partial at 63 bytes, too big at 64.
    assert_eq!(
        parse_request(&over.as_bytes()[..63], &limits),
        Ok(Parsed::Partial)
    );
    assert_eq!(
        parse_request(&over.as_bytes()[..64], &limits).map_err(|e| e.status),
        Err(431)
    );
    // The target limit applies as soon as the target is longer, mid-line.
    assert_eq!(
        parse_request(b"GET /1234567890", &limits).map_err(|e| e.status),
        Err(414)
    );
    assert_eq!(
        parse_request(b"GET /123456789", &limits),
        Ok(Parsed::Partial)
    );
}

#[test]
fn huge_max_headers_does_not_allocate_huge_tables() {
    let limits = Limits {
        max_headers: usize::MAX,
        ..Limits::default()
    };
    let input = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X: 1\r\n".repeat(300)
    );
    let head = parse_request(input.as_bytes(), &limits)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(head.headers().count(), 301);
}
