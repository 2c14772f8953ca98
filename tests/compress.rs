//! Compression of proxied answers (`encode`) and precompressed static files, end to end:
//! the real binary between curl (HTTP/1.1) or Python's `h2` (HTTP/2,
//! `tests/support_h2_get.py`) and a real JSON backend (`tests/support_compress_app.py`).
//! What tether sent is decoded by the real `gzip -d`, `brotli -d` and `zstd -d` and
//! compared byte for byte with what the backend sends uncompressed.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config(port: u16, up: u16) -> String {
    format!(
        r#"[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true
encode = true

[[server.route]]
path = "/off"
proxy = "app"
strip_prefix = true
encode = false

[[server.route]]
path = "/gzonly"
proxy = "app"
strip_prefix = true
encode = {{ types = ["application/json"], min_length = 100, gzip = 1, prefer = ["gzip"] }}

[[server.route]]
path = "/"
proxy = "app"
"#
    )
}

struct Setup {
    _app: Proc,
    _tether: Proc,
    port: u16,
    dir: TempDir,
}

fn setup(tag: &str) -> Setup {
    let (app, up) = python_listening("tests/support_compress_app.py", &[]);
    let dir = TempDir::new(tag);
    let port = free_port();
    let tether = tether(&dir, &config(port, up), &[port]);
    Setup {
        _app: app,
        _tether: tether,
        port,
        dir,
    }
}

/// curl `path` with `headers` (and `-I` for HEAD): (response head, body bytes).
fn fetch(port: u16, path: &str, headers: &[&str], head: bool) -> (String, Vec<u8>) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-D", "-", "--http1.1"];
    if head {
        args.push("-I");
    }
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(&url);
    let out = curl(&args);
    assert!(out.status.success(), "curl {path}: {:?}", out);
    let end = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {:?}", String::from_utf8_lossy(&out.stdout)));
    let head_text = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
    (head_text, out.stdout[end + 4..].to_vec())
}

/// `prog -d -c` on `data` (the Debian CLIs).
fn decode(prog: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(prog)
        .args(["-d", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog} (apt-get install gzip brotli zstd): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("decoder output");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "{prog} -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn cli_for(coding: &str) -> &'static str {
    match coding {
        "gzip" => "gzip",
        "br" => "brotli",
        "zstd" => "zstd",
        other => panic!("{other}"),
    }
}

fn vary_has_accept_encoding(head: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("vary") && v.to_ascii_lowercase().contains("accept-encoding")
        })
    })
}

#[test]
fn proxied_json_is_compressed_with_each_coding_over_http1() {
    let s = setup("compress-h1");
    for path in ["/json?n=100000", "/chunked?n=100000", "/close?n=100000"] {
        let (plain_head, plain) = fetch(s.port, path, &[], false);
        assert_eq!(
            header(&plain_head, "content-encoding"),
            None,
            "{plain_head}"
        );
        assert_eq!(plain.len(), 100_000, "{plain_head}");
        assert!(vary_has_accept_encoding(&plain_head), "{plain_head}");
        for coding in ["gzip", "br", "zstd"] {
            let ae = format!("Accept-Encoding: {coding}");
            let (head, body) = fetch(s.port, path, &[&ae], false);
            assert_eq!(
                header(&head, "content-encoding"),
                Some(coding),
                "{path}: {head}"
            );
            assert!(vary_has_accept_encoding(&head), "{head}");
            assert_eq!(header(&head, "content-length"), None, "{head}");
            assert_eq!(
                header(&head, "transfer-encoding"),
                Some("chunked"),
                "{head}"
            );
            assert!(
                body.len() < plain.len() / 3,
                "{coding} {path}: {} bytes",
                body.len()
            );
            assert_eq!(decode(cli_for(coding), &body), plain, "{coding} {path}");
        }
    }
    // q-values choose; a refused coding is not used; ties go to zstd, br, gzip.
    for (ae, want) in [
        ("gzip;q=0.5, br;q=0.9", Some("br")),
        ("gzip, zstd;q=0", Some("gzip")),
        ("gzip, deflate, br, zstd", Some("zstd")),
        ("identity", None),
        ("*;q=0", None),
    ] {
        let h = format!("Accept-Encoding: {ae}");
        let (head, _) = fetch(s.port, "/json?n=5000", &[&h], false);
        assert_eq!(header(&head, "content-encoding"), want, "{ae}: {head}");
    }
    // A route's own policy: gzip only, level 1, a smaller minimum.
    let (head, body) = fetch(
        s.port,
        "/gzonly/json?n=500",
        &["Accept-Encoding: br, gzip"],
        false,
    );
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    let (_, plain) = fetch(s.port, "/json?n=500", &[], false);
    assert_eq!(decode("gzip", &body), plain);
    // A strong ETag becomes weak; the backend's Vary keeps its values.
    let (head, _) = fetch(s.port, "/etag?n=5000", &["Accept-Encoding: gzip"], false);
    assert_eq!(header(&head, "etag"), Some("W/\"v1\""), "{head}");
    assert_eq!(
        header(&head, "vary"),
        Some("Origin, Accept-Encoding"),
        "{head}"
    );
    // Keep-alive: two compressed answers on one connection (curl reuses it).
    let url = format!("http://127.0.0.1:{}/json?n=20000", s.port);
    let out = curl(&[
        "--http1.1",
        "-H",
        "Accept-Encoding: zstd",
        "-o",
        s.dir.path().join("a").to_str().unwrap(),
        &url,
        "-o",
        s.dir.path().join("b").to_str().unwrap(),
        &url,
        "-w",
        "%{num_connects}\n",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["1", "0"], "{text}");
    let (_, plain) = fetch(s.port, "/json?n=20000", &[], false);
    for f in ["a", "b"] {
        let got = std::fs::read(s.dir.path().join(f)).expect("curl output");
        assert_eq!(decode("zstd", &got), plain);
    }
    // HTTP/1.0: compressed, delimited by the close.
    let out = raw(
        s.port,
        b"GET /json?n=30000 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    let (_, plain) = fetch(s.port, "/json?n=30000", &[], false);
    assert_eq!(decode("gzip", &out[end + 4..]), plain);
}

#[test]
fn answers_that_must_not_be_compressed_pass_untouched() {
    let s = setup("compress-skip");
    let ae = "Accept-Encoding: gzip, br, zstd";
    // (path, extra request header, HEAD, Vary expected)
    let cases: [(&str, Option<&str>, bool, bool); 7] = [
        ("/json?n=100000", None, true, true), // HEAD
        ("/json?n=100000", Some("Range: bytes=0-9"), false, true), // Range (206)
        ("/encoded?n=100000", None, false, false), // already encoded
        ("/notransform?n=100000", None, false, false), // no-transform
        ("/json?n=500", None, false, false),  // small
        ("/png?n=100000", None, false, false), // wrong type
        ("/off/json?n=100000", None, false, false), // encode = false
    ];
    for (path, extra, head_only, vary) in cases {
        let mut hs = vec![ae];
        hs.extend(extra);
        let (head, body) = fetch(s.port, path, &hs, head_only);
        let mut plain_hs = vec![];
        plain_hs.extend(extra);
        let (plain_head, plain) = fetch(s.port, path, &plain_hs, head_only);
        let ce = header(&head, "content-encoding");
        let backend_ce = header(&plain_head, "content-encoding");
        assert_eq!(ce, backend_ce, "{path}: {head}");
        assert_eq!(body, plain, "{path}");
        assert_eq!(
            header(&head, "content-length"),
            header(&plain_head, "content-length"),
            "{path}: {head}"
        );
        assert_eq!(vary_has_accept_encoding(&head), vary, "{path}: {head}");
    }
    let (head, _) = fetch(s.port, "/json?n=100000", &[ae, "Range: bytes=0-9"], false);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let (head, body) = fetch(s.port, "/encoded?n=100000", &[ae], false);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(decode("gzip", &body).len(), 100_000);
}

/// One HTTP/2 GET (h2c) through `tests/support_h2_get.py`: (status, headers, body).
fn h2_get(port: u16, path: &str, headers: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let out = Command::new("timeout")
        .args(["30", "python3"])
        .arg(repo().join("tests/support_h2_get.py"))
        .arg(port.to_string())
        .arg(path)
        .args(headers)
        .output()
        .expect("python3 tests/support_h2_get.py (pip install h2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    let hs = v["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or("").to_string(),
                        p[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The body is printed as latin-1: one char per byte.
    let body = v["body"]
        .as_str()
        .unwrap_or("")
        .chars()
        .map(|c| c as u32 as u8)
        .collect();
    (status, hs, body)
}

fn field<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn proxied_json_is_compressed_over_http2() {
    let s = setup("compress-h2");
    let (_, plain) = fetch(s.port, "/json?n=100000", &[], false);
    for path in ["/json?n=100000", "/chunked?n=100000", "/close?n=100000"] {
        for coding in ["gzip", "br", "zstd"] {
            let ae = format!("accept-encoding={coding}");
            let (status, hs, body) = h2_get(s.port, path, &[&ae]);
            assert_eq!(status, 200, "{path} {hs:?}");
            assert_eq!(
                field(&hs, "content-encoding"),
                Some(coding),
                "{path} {hs:?}"
            );
            assert_eq!(field(&hs, "content-length"), None, "{hs:?}");
            assert!(
                field(&hs, "vary").is_some_and(|v| v.contains("Accept-Encoding")),
                "{hs:?}"
            );
            assert_eq!(decode(cli_for(coding), &body), plain, "{coding} {path}");
        }
    }
    // Skipped over HTTP/2 too: a Range, a small answer, a wrong type.
    for (path, extra) in [
        ("/json?n=100000", Some("range=bytes=0-9")),
        ("/json?n=500", None),
        ("/png?n=100000", None),
    ] {
        let mut hs = vec!["accept-encoding=gzip, br, zstd"];
        hs.extend(extra);
        let (_, got, body) = h2_get(s.port, path, &hs);
        assert_eq!(field(&got, "content-encoding"), None, "{path} {got:?}");
        let (_, _, plain) = h2_get(s.port, path, &hs[1..]);
        assert_eq!(body, plain, "{path}");
    }
}

/// Read a chunked body from `r` (after its head) into `out`, calling `each` after every
/// chunk with the bytes so far.
fn read_chunked(r: &mut impl std::io::BufRead, out: &mut Vec<u8>, mut each: impl FnMut(&[u8])) {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("chunk size line");
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            let mut end = String::new();
            r.read_line(&mut end).expect("last CRLF");
            return;
        }
        let start = out.len();
        out.resize(start + size, 0);
        r.read_exact(&mut out[start..]).expect("chunk data");
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).expect("chunk CRLF");
        each(out);
    }
}

fn large_streamed(coding: &str, cli: &str, mb: usize) {
    let s = setup(&format!("compress-large-{coding}"));
    let pid = s._tether.pid();
    let d = s.dir.path().join("stream");
    std::fs::create_dir_all(&d).expect("mkdir");
    let before = rss_kib(pid);
    let mut conn = TcpStream::connect(addr(s.port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let req = format!(
        "GET /stream?mb={mb}&dir={} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {coding}\r\nConnection: close\r\n\r\n",
        d.display()
    );
    conn.write_all(req.as_bytes()).expect("send");
    let mut r = std::io::BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut r, &mut line).expect("head line");
        assert!(n > 0, "no head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert_eq!(header(&head, "content-encoding"), Some(coding), "{head}");
    let mut body = Vec::new();
    let mut released = false;
    let mut peak = before;
    let mut n = 0usize;
    let started = Instant::now();
    read_chunked(&mut r, &mut body, |_| {
        n += 1;
        if !released {
            // Compressed bytes arrived while the backend holds back its second half: tether
            // did not wait for the backend's last byte.
            assert!(!d.join("done").exists(), "the backend finished first");
            released = true;
            std::fs::write(d.join("release"), b"").expect("release");
        }
        if n.is_multiple_of(16) {
            peak = peak.max(rss_kib(pid));
        }
    });
    assert!(released, "no compressed byte arrived");
    assert!(d.join("done").exists(), "the backend did not finish");
    peak = peak.max(rss_kib(pid));
    let sent = std::fs::read(d.join("sent")).expect("what the backend sent");
    assert_eq!(sent.len(), mb << 20);
    assert!(
        body.len() < sent.len() / 3,
        "{} compressed bytes",
        body.len()
    );
    let dec = decode(cli, &body);
    assert!(dec == sent, "decoded {} bytes differ", dec.len());
    let grew = peak.saturating_sub(before);
    eprintln!(
        "{coding}: {mb} MiB streamed in {:?}, {} bytes out, tether RSS {before} KiB -> peak {peak} KiB",
        started.elapsed(),
        body.len()
    );
    assert!(grew < 24 * 1024, "tether's RSS grew by {grew} KiB");
}

#[test]
fn a_large_streamed_answer_compresses_with_bounded_memory_and_early_first_byte() {
    large_streamed("zstd", "zstd", 50);
    // brotli's pure-Rust encoder is ~10x slower in a debug build: a smaller answer.
    large_streamed("br", "brotli", 12);
}

#[test]
fn encode_config_errors_have_positions() {
    let dir = TempDir::new("compress-check");
    for (text, want) in [
        (
            "[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n[[server]]\nlisten = [\"127.0.0.1:1\"]\nencode = { gzip = 12 }\n[[server.route]]\npath = \"/\"\nproxy = \"a\"\n",
            ":6:10: `encode.gzip`: level 12 is outside 1-9",
        ),
        (
            "[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"a\"\nencode = { prefer = [\"lzma\"] }\n",
            ":9:10: `encode.prefer`: \"lzma\" is not",
        ),
        (
            "[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nroot = \".\"\nencode = true\n",
            ":6:10: `encode` goes with `proxy`",
        ),
        (
            "[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"a\"\nprecompressed = true\n",
            ":9:17: `precompressed` goes with `root`",
        ),
    ] {
        let p = dir.write("bad.toml", text.as_bytes());
        let out = Command::new(TETHER)
            .args(["check", p.to_str().expect("utf-8")])
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(want), "want {want:?} in {err}");
    }
}

#[test]
fn precompressed_siblings_are_served() {
    let dir = TempDir::new("compress-files");
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).expect("mkdir");
    let app: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("var x{i} = {i};\n").into_bytes())
        .collect();
    std::fs::write(root.join("app.js"), &app).expect("write");
    for (suffix, prog) in [(".gz", "gzip"), (".br", "brotli"), (".zst", "zstd")] {
        let mut child = Command::new(prog)
            .args(["-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(prog);
        let mut stdin = child.stdin.take().expect("stdin");
        let data = app.clone();
        let w = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().expect("compress");
        let _ = w.join();
        std::fs::write(root.join(format!("app.js{suffix}")), out.stdout).expect("write");
    }
    // only a .br sibling here
    std::fs::write(root.join("solo.css"), b"body { color: red }\n".repeat(100)).expect("w");
    std::fs::write(root.join("solo.css.br"), b"not really brotli").expect("w");
    let port = free_port();
    let cfg = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n[[server.route]]\npath = \"/\"\nroot = \"{}\"\nprecompressed = true\n",
        root.display()
    );
    let _t = tether(&dir, &cfg, &[port]);
    for (ae, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=1, br;q=0.5", "gzip"),
    ] {
        let h = format!("Accept-Encoding: {ae}");
        let (head, body) = fetch(port, "/app.js", &[&h], false);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            header(&head, "content-encoding"),
            Some(coding),
            "{ae}: {head}"
        );
        assert!(
            header(&head, "content-type").is_some_and(|t| t.contains("javascript")),
            "{head}"
        );
        assert!(vary_has_accept_encoding(&head), "{head}");
        assert_eq!(decode(cli_for(coding), &body), app, "{ae}");
        let (status, hs, body) = h2_get(port, "/app.js", &[&format!("accept-encoding={ae}")]);
        assert_eq!(status, 200);
        assert_eq!(field(&hs, "content-encoding"), Some(coding), "{hs:?}");
        assert_eq!(decode(cli_for(coding), &body), app, "h2 {ae}");
    }
    let (head, body) = fetch(port, "/app.js", &["Accept-Encoding: identity"], false);
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(body, app);
    let (head, body) = fetch(port, "/solo.css", &["Accept-Encoding: gzip, br"], false);
    assert_eq!(header(&head, "content-encoding"), Some("br"), "{head}");
    assert_eq!(body, b"not really brotli");
    let (head, _) = fetch(port, "/solo.css", &["Accept-Encoding: gzip"], false);
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert!(vary_has_accept_encoding(&head), "{head}");
}

#[test]
fn answers_from_an_h2c_pool_are_compressed_for_both_client_protocols() {
    // The backend's answers reach the compressing tether over HTTP/2 (an h2c pool whose
    // server is another tether in front of the JSON app): the same policy, head edits and
    // streaming compressor as for an HTTP/1.1 pool, for HTTP/1.1 and HTTP/2 clients.
    let (app, up) = python_listening("tests/support_compress_app.py", &[]);
    let (back_dir, dir) = (
        TempDir::new("compress-h2up-back"),
        TempDir::new("compress-h2up"),
    );
    let (back, port) = (free_port(), free_port());
    let back_config = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{up}\"]\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{back}\"]\nhttp2 = true\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    );
    let _back = tether(&back_dir, &back_config, &[back]);
    let config = format!(
        "[[upstream]]\nname = \"mid\"\nservers = [\"127.0.0.1:{back}\"]\nprotocol = \"h2c\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\nencode = true\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"mid\"\n"
    );
    let t = tether(&dir, &config, &[port]);
    let (head, plain) = fetch(port, "/json?n=100000", &[], false);
    assert!(
        !head.to_ascii_lowercase().contains("content-encoding"),
        "{head}"
    );
    assert_eq!(plain.len(), 100_000, "{head}");
    for path in ["/json?n=100000", "/chunked?n=100000"] {
        for coding in ["gzip", "br", "zstd"] {
            let ae = format!("Accept-Encoding: {coding}");
            let (head, body) = fetch(port, path, &[&ae], false);
            let lower = head.to_ascii_lowercase();
            assert!(
                lower.contains(&format!("content-encoding: {coding}")),
                "http/1.1 {path} {coding}: {head}\n{}",
                t.log_text()
            );
            assert!(lower.contains("transfer-encoding: chunked"), "{head}");
            assert!(!lower.contains("content-length"), "{head}");
            assert!(vary_has_accept_encoding(&head), "{head}");
            assert_eq!(
                decode(cli_for(coding), &body),
                plain,
                "http/1.1 {path} {coding}"
            );
            let ae = format!("accept-encoding={coding}");
            let (status, hs, body) = h2_get(port, path, &[&ae]);
            assert_eq!(status, 200, "{path} {hs:?}");
            assert_eq!(
                field(&hs, "content-encoding"),
                Some(coding),
                "h2 {path} {hs:?}"
            );
            assert_eq!(field(&hs, "content-length"), None, "{hs:?}");
            assert_eq!(decode(cli_for(coding), &body), plain, "h2 {path} {coding}");
        }
    }
    // A type the policy leaves alone passes untouched.
    let (head, body) = fetch(port, "/png?n=100000", &["Accept-Encoding: gzip"], false);
    assert!(
        !head.to_ascii_lowercase().contains("content-encoding"),
        "{head}"
    );
    assert_eq!(body, plain);
    drop(app);
}
