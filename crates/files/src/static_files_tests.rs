//! Tests of `static_files.rs`: replies taken apart (head, inline body, streamed range).

use super::*;
use tether_http::{parse_request, Limits, Parsed};

/// A reply taken apart: the head, the body (inline bytes, then the streamed range read
/// from the file), and whether part of it was streamed.
struct Got {
    head: String,
    body: Vec<u8>,
    streamed: bool,
}

impl Got {
    fn field(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    }
    fn status(&self) -> &str {
        self.head.get(9..12).unwrap_or_default()
    }
}

fn send(opts: &FileOptions, method: &str, path: &str, fields: &str) -> Got {
    let text = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    let req = match parse_request(text.as_bytes(), &Limits::default()) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!("{other:?}"),
    };
    let r = serve(opts, &req, "tether", true);
    assert!(!r.close);
    let n = r
        .head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank")
        + 4;
    let mut body = r.head[n..].to_vec();
    let streamed = r.body.is_some();
    if let Some((f, offset, len)) = r.body {
        let mut more = vec![0; len as usize];
        f.read_exact_at(&mut more, offset).expect("range in file");
        body.extend_from_slice(&more);
    }
    let head = String::from_utf8_lossy(&r.head[..n]).to_string();
    Got {
        head,
        body,
        streamed,
    }
}

fn get(opts: &FileOptions, path: &str, fields: &str) -> Got {
    send(opts, "GET", path, fields)
}

fn gunzip(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(z)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

struct Root(PathBuf);
impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn root(tag: &str) -> Root {
    let p = std::env::temp_dir().join(format!("tether-sf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("d")).expect("temp dir");
    Root(p)
}

#[test]
fn ranges() {
    use ByteRange::*;
    let cases = [
        ("bytes=10-19", Part(10, 19)),
        ("bytes=10-", Part(10, 99)),
        ("bytes=-10", Part(90, 99)),
        ("bytes=-1000", Part(0, 99)),
        ("bytes=90-1000", Part(90, 99)),
        ("BYTES = 0-0", Part(0, 0)),
        ("bytes=99999999999999999999999-", Unsatisfiable),
        ("bytes=100-", Unsatisfiable),
        ("bytes=100-200", Unsatisfiable),
        ("bytes=-0", Unsatisfiable),
        ("bytes=0-1,5-6", Whole),
        ("bytes=5-4", Whole),
        ("bytes=a-b", Whole),
        ("bytes=-", Whole),
        ("bytes=", Whole),
        ("items=0-1", Whole),
        ("0-1", Whole),
        ("bytes=+1-2", Whole),
    ];
    for (v, want) in cases {
        assert_eq!(parse_range(v, 100), want, "{v}");
    }
    assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
    assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
}

#[test]
fn etags() {
    let t = etag(
        Some(UNIX_EPOCH + std::time::Duration::from_nanos(0x1234)),
        0x56,
    );
    assert_eq!(t, "\"1234-56\"");
    assert_eq!(gzip_etag(&t), "\"1234-56-gz\"");
    let lists = [
        ("\"1234-56\"", true),
        ("W/\"1234-56\"", true),
        ("\"x\", W/\"1234-56\"", true),
        ("*", true),
        ("\"x\",\"y\"", false),
        ("\"1234-56-gz\"", false),
        ("1234-56", false),
        ("\"1234-56", false),
        ("", false),
    ];
    for (list, want) in lists {
        assert_eq!(etag_matches(list, &t), want, "{list}");
    }
    let date = |s| if_range_holds(Some(s), &t, Some(5));
    assert!(if_range_holds(None, &t, Some(5)));
    assert!(date(&t) && !date("W/\"1234-56\"") && !date("\"other\"") && !date("garbage"));
    assert!(date("Thu, 01 Jan 1970 00:00:05 GMT"));
    assert!(!date("Thu, 01 Jan 1970 00:00:06 GMT"));
}

#[test]
fn accept_encoding() {
    let cases = [
        ("gzip", true),
        ("deflate, gzip;q=0.5", true),
        ("GZIP", true),
        ("x-gzip", true),
        ("*", true),
        ("br, *;q=0.1", true),
        ("gzip;q=0", false),
        ("gzip; q=0.000", false),
        ("gzip;q=0, *", false),
        ("*;q=0", false),
        ("deflate, br", false),
        ("identity", false),
        ("gzip;q=bad", false),
        ("", false),
    ];
    for (v, want) in cases {
        assert_eq!(accepts_gzip(v), want, "{v}");
    }
}

#[test]
fn gzip_when_accepted() {
    let r = root("gzip");
    let text = "hello, compressible world\n".repeat(200);
    for name in ["t.txt", "p.png"] {
        std::fs::write(r.0.join(name), &text).expect("write");
    }
    std::fs::write(r.0.join("tiny.txt"), "hi").expect("write");
    let mut opts = FileOptions::new(r.0.clone());
    opts.gzip = true;
    let ae = "Accept-Encoding: gzip, deflate\r\n";

    let g = get(&opts, "/t.txt", ae);
    assert_eq!(g.status(), "200", "{}", g.head);
    assert_eq!(g.field("Content-Encoding"), Some("gzip"), "{}", g.head);
    assert_eq!(g.field("Vary"), Some("Accept-Encoding"));
    assert_eq!(
        g.field("Content-Length"),
        Some(g.body.len().to_string().as_str())
    );
    assert_eq!(g.field("Accept-Ranges"), None);
    assert!(!g.streamed && g.body.len() < text.len());
    assert_eq!(gunzip(&g.body), text.as_bytes());
    let tag = g.field("ETag").expect("etag").to_string();
    assert!(tag.ends_with("-gz\""), "{tag}");
    // The gzip ETag revalidates the gzip reply.
    let g = get(&opts, "/t.txt", &format!("{ae}If-None-Match: {tag}\r\n"));
    assert_eq!((g.status(), g.body.len()), ("304", 0), "{}", g.head);
    // HEAD: the same head, no body.
    let h = send(&opts, "HEAD", "/t.txt", ae);
    assert_eq!(h.field("Content-Encoding"), Some("gzip"));
    assert!(h.field("Content-Length").is_some() && h.body.is_empty());

    // Plain: no Accept-Encoding, q=0, a Range, a type not listed, a tiny file.
    let plain = [
        ("/t.txt", String::new(), true),
        ("/t.txt", "Accept-Encoding: gzip;q=0\r\n".to_string(), true),
        ("/t.txt", format!("{ae}Range: bytes=0-9\r\n"), true),
        ("/p.png", ae.to_string(), false),
        ("/tiny.txt", ae.to_string(), false),
    ];
    for (path, fields, vary) in plain {
        let g = get(&opts, path, &fields);
        assert_eq!(g.field("Content-Encoding"), None, "{path} {fields}");
        assert_eq!(g.field("Vary").is_some(), vary, "{path} {fields}");
        assert!(text.as_bytes().starts_with(&g.body) || g.body == b"hi");
    }
    opts.gzip = false;
    let g = get(&opts, "/t.txt", ae);
    assert_eq!((g.field("Content-Encoding"), g.field("Vary")), (None, None));
    assert_eq!(g.body, text.as_bytes());

    // Over the cap: plain, streamed.
    opts.gzip = true;
    let big = vec![b'a'; GZIP_MAX as usize + 1];
    std::fs::write(r.0.join("big.txt"), &big).expect("write");
    let g = get(&opts, "/big.txt", ae);
    assert_eq!(g.field("Content-Encoding"), None, "{}", g.head);
    assert!(g.streamed && g.body == big);

    // Level 0 still makes valid gzip; the listing is compressed too.
    opts.gzip_level = 0;
    assert_eq!(gunzip(&get(&opts, "/t.txt", ae).body), text.as_bytes());
    let g = get(&opts, "/d/", ae);
    assert_eq!(g.field("Content-Encoding"), Some("gzip"), "{}", g.head);
    assert!(String::from_utf8_lossy(&gunzip(&g.body)).contains("Index of /d/"));
}

#[test]
fn conditional_and_ranges() {
    let r = root("cond");
    let data: Vec<u8> = (0..100u8).collect();
    std::fs::write(r.0.join("f.bin"), &data).expect("write");
    let big: Vec<u8> = (0..INLINE_MAX as usize + 10).map(|i| i as u8).collect();
    std::fs::write(r.0.join("big.bin"), &big).expect("write");
    let opts = FileOptions::new(r.0.clone());
    let g = get(&opts, "/f.bin", "");
    assert_eq!(g.field("Accept-Ranges"), Some("bytes"));
    assert!(g.body == data && !g.streamed);
    let tag = g.field("ETag").expect("etag").to_string();
    let lm = g.field("Last-Modified").expect("last-modified").to_string();
    let g = get(&opts, "/big.bin", "");
    assert!(g.body == big && g.streamed);

    let g = get(&opts, "/f.bin", &format!("If-None-Match: \"a\", {tag}\r\n"));
    assert!(
        g.head.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{}",
        g.head
    );
    assert_eq!(g.field("ETag"), Some(tag.as_str()));
    assert_eq!(g.field("Content-Length"), None);
    assert!(g.body.is_empty() && g.field("Connection").is_none());
    let g = get(&opts, "/f.bin", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(g.status(), "304");
    // If-None-Match wins over If-Modified-Since.
    let both = format!("If-None-Match: \"a\"\r\nIf-Modified-Since: {lm}\r\n");
    assert_eq!(get(&opts, "/f.bin", &both).status(), "200");
    let old = "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    assert_eq!(get(&opts, "/f.bin", old).status(), "200");

    let g = get(&opts, "/f.bin", "Range: bytes=10-19\r\n");
    assert!(
        g.head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{}",
        g.head
    );
    assert_eq!(g.field("Content-Range"), Some("bytes 10-19/100"));
    assert_eq!(g.field("Content-Length"), Some("10"));
    assert_eq!(g.body, &data[10..20]);
    let g = get(&opts, "/big.bin", "Range: bytes=1-\r\n");
    assert!(g.body == big[1..] && g.streamed);
    let g = get(&opts, "/f.bin", "Range: bytes=100-\r\n");
    assert!(
        g.head.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"),
        "{}",
        g.head
    );
    assert_eq!(g.field("Content-Range"), Some("bytes */100"));
    assert_eq!(
        g.field("Content-Length"),
        Some(g.body.len().to_string().as_str())
    );
    let g = get(
        &opts,
        "/f.bin",
        &format!("Range: bytes=-5\r\nIf-Range: {tag}\r\n"),
    );
    assert_eq!((g.status(), g.body.as_slice()), ("206", &data[95..]));
    let g = get(&opts, "/f.bin", "Range: bytes=-5\r\nIf-Range: \"old\"\r\n");
    assert_eq!((g.status(), g.body.as_slice()), ("200", &data[..]));

    // HEAD ignores Range and sends no body.
    let h = send(&opts, "HEAD", "/f.bin", "Range: bytes=0-1\r\n");
    assert_eq!((h.status(), h.body.len()), ("200", 0));
    assert_eq!(h.field("Content-Length"), Some("100"));
}

#[test]
fn listing_on_and_off() {
    let r = root("list");
    std::fs::write(r.0.join("d/a b&c.txt"), "x").expect("write");
    let mut opts = FileOptions::new(r.0.clone());
    let g = get(&opts, "/d/", "");
    assert_eq!(g.status(), "200", "{}", g.head);
    assert_eq!(g.field("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        g.field("Content-Length"),
        Some(g.body.len().to_string().as_str())
    );
    let page = String::from_utf8_lossy(&g.body);
    assert!(
        page.contains("href=\"a%20b%26c.txt\">a b&amp;c.txt<"),
        "{page}"
    );
    opts.listing = false;
    assert_eq!(get(&opts, "/d/", "").status(), "403");
    opts.index = vec!["a b&c.txt".to_string()];
    assert_eq!(get(&opts, "/d/", "").body, b"x");
}
