//! HTTP/2 towards clients (`http2 = true`), end to end: the real binary, `curl --http2`
//! over TLS (a CA made at test time) and `--http2-prior-knowledge` (h2c), `nghttp` (Debian
//! `nghttp2-client`) with many streams on one connection, python upstreams behind, and a
//! raw socket for a flood (rapid reset), headless Chromium loading a page of 31 resources
//! over HTTPS/h2 (the test CA trusted by its SPKI hash).

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tls_support::{Ca, Key};

/// A config: files under `root` at `/files`, everything else proxied to `up_port`.
fn config(port: u16, up_port: u16, root: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
access_log = "access.log"

[[upstream]]
name = "app"
servers = ["127.0.0.1:{up_port}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true
{extra}

[[server.route]]
path = "/files"
root = "{}"

[[server.route]]
path = "/"
proxy = "app"
"#,
        root.display()
    )
}

/// `curl --http2-prior-knowledge` → (http version, status, body).
/// tether with `http2 = true` on a free port (`config`: files from `dir/www`, the rest to
/// a python upstream; `extra`: more keys of the server): the port and what to keep alive.
fn h2_tether(dir: &TempDir, extra: &str) -> (u16, Proc, Proc) {
    let (port, up_port) = (free_port(), free_port());
    let up = python_upstream(up_port);
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    let t = tether(dir, &config(port, up_port, &www, extra), &[port]);
    (port, up, t)
}

fn h2c(url: &str, extra: &[&str]) -> (String, u16, Vec<u8>) {
    let mut args = vec![
        "--http2-prior-knowledge",
        "-o",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    split(curl(&args).stdout)
}

fn split(mut out: Vec<u8>) -> (String, u16, Vec<u8>) {
    let nl = out.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let tail = String::from_utf8_lossy(&out[nl..]).trim().to_string();
    out.truncate(nl);
    let (version, code) = tail.split_once(' ').unwrap_or(("", "0"));
    (version.to_string(), code.parse().unwrap_or(0), out)
}

fn nghttp(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg("nghttp")
        .args(args)
        .output()
        .expect("run nghttp (Debian nghttp2-client)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn h2c_files_proxy_and_http11_on_the_same_port() {
    let dir = TempDir::new("h2c-basic");
    dir.write("www/files/hello.txt", b"hello over h2\n");
    let (port, _up, _t) = h2_tether(&dir, "");
    let base = format!("http://127.0.0.1:{port}");

    let (v, code, body) = h2c(&format!("{base}/files/hello.txt"), &[]);
    assert_eq!(
        (v.as_str(), code, &body[..]),
        ("2", 200, &b"hello over h2\n"[..])
    );
    let (v, code, body) = h2c(&format!("{base}/files/hello.txt"), &["-r", "6-9"]);
    assert_eq!((v.as_str(), code, &body[..]), ("2", 206, &b"over"[..]));
    let (_, code, body) = h2c(&format!("{base}/files/hello.txt"), &["-I"]);
    let head = String::from_utf8_lossy(&body).to_lowercase();
    assert_eq!(code, 200);
    assert!(head.contains("content-length: 14"), "{head}");
    let (v, code, _) = h2c(&format!("{base}/files/missing"), &[]);
    assert_eq!((v.as_str(), code), ("2", 404));

    // Proxied: the upstream sees HTTP/1.1 with Host from :authority and X-Forwarded-*.
    let (v, code, body) = h2c(
        &format!("{base}/head"),
        &["-H", "Cookie: a=1", "-H", "Cookie: b=2"],
    );
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert_eq!((v.as_str(), code), ("2", 200), "{seen}");
    assert!(seen.starts_with("get /head http/1.1\r\n"), "{seen}");
    assert!(seen.contains(&format!("host: 127.0.0.1:{port}")), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("cookie: a=1; b=2\n"), "{seen}");
    let (v, code, body) = h2c(&format!("{base}/chunked?n=3"), &[]);
    assert_eq!((v.as_str(), code), ("2", 200));
    assert_eq!(body, b"chunk-0\nchunk-1\nchunk-2\n");
    let (_, code, body) = h2c(&format!("{base}/close"), &[]);
    assert_eq!((code, body.len()), (200, 1200));
    let (_, code, body) = h2c(&format!("{base}/echo"), &["--data-binary", "posted"]);
    assert_eq!((code, &body[..]), (200, &b"posted"[..]));

    // HTTP/1.1 on the same port.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("{base}/files/hello.txt"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 200");
    let log = dir.path().join("access.log");
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("\"GET /files/hello.txt HTTP/2.0\" 200")
                && l.contains("\"GET /files/hello.txt HTTP/1.1\" 200"))),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn h2_over_tls_by_alpn_and_http11_fallback() {
    let dir = TempDir::new("h2-tls");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    dir.write("www/files/a.txt", b"over tls\n");
    let (port, plain, up_port) = (free_port(), free_port(), free_port());
    let _up = python_echo_head(up_port);
    let tls = format!(
        "tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}",
        cert.display(),
        key.display()
    );
    // A second server without http2: curl --http2 gets HTTP/1.1 there.
    let text = config(port, up_port, &dir.path().join("www"), &tls)
        + &format!("\n[[server]]\nlisten = [\"127.0.0.1:{plain}\"]\n{tls}\nroute = [{{ path = \"/\", proxy = \"app\" }}]\n");
    let _t = tether(&dir, &text, &[port, plain]);
    let resolve = format!("localhost:{port}:127.0.0.1");
    let cacert = ca.cert.to_str().unwrap().to_string();
    let get = |port: u16, path: &str, proto: &str| {
        let resolve = format!("localhost:{port}:127.0.0.1");
        let url = format!("https://localhost:{port}{path}");
        let w = "\n%{http_version} %{http_code}";
        split(
            curl(&[
                proto,
                "--cacert",
                &cacert,
                "--resolve",
                &resolve,
                "-o",
                "-",
                "-w",
                w,
                &url,
            ])
            .stdout,
        )
    };
    let (v, code, body) = get(port, "/files/a.txt", "--http2");
    assert_eq!(
        (v.as_str(), code, &body[..]),
        ("2", 200, &b"over tls\n"[..])
    );
    let (v, code, body) = get(port, "/x", "--http2");
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert_eq!((v.as_str(), code), ("2", 200));
    assert!(
        seen.contains("x-forwarded-proto: https\n") && seen.contains("host: localhost:"),
        "{seen}"
    );
    let (v, code, _) = get(port, "/files/a.txt", "--http1.1");
    assert_eq!((v.as_str(), code), ("1.1", 200));
    let (v, code, _) = get(plain, "/x", "--http2");
    assert_eq!((v.as_str(), code), ("1.1", 200));
    drop(resolve);
}

#[test]
fn nghttp_many_streams_on_one_connection() {
    let dir = TempDir::new("h2-nghttp");
    dir.write("www/files/a.txt", b"a\n");
    let (port, _up, _t) = h2_tether(&dir, "");
    let out = nghttp(&[
        "-nv",
        "-m",
        "60",
        &format!("http://127.0.0.1:{port}/whoami"),
    ]);
    // One connection: one preface, 60 streams answered 200.
    assert_eq!(out.matches("recv HEADERS frame").count(), 60, "{out}");
    assert_eq!(out.matches(":status: 200").count(), 60, "{out}");
    let out = nghttp(&[
        "-ns",
        "-m",
        "40",
        &format!("http://127.0.0.1:{port}/files/a.txt"),
    ]);
    assert_eq!(out.matches(" 200 ").count(), 40, "{out}");
}

#[test]
fn hundred_streams_against_a_slow_upstream_run_together() {
    let dir = TempDir::new("h2-slow");
    let (port, _up, _t) = h2_tether(&dir, "");
    let started = Instant::now();
    let out = nghttp(&[
        "-ns",
        "-m",
        "100",
        &format!("http://127.0.0.1:{port}/slow?ms=1000"),
    ]);
    let took = started.elapsed();
    assert_eq!(out.matches(" 200 ").count(), 100, "{out}");
    // One after another would take 100 s; together about one slow time.
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn large_upload_and_download_byte_for_byte() {
    let dir = TempDir::new("h2-large");
    let data = noise(32 << 20, 7);
    let file = dir.write("www/files/big.bin", &data);
    let (port, _up, _t) = h2_tether(&dir, "");
    let base = format!("http://127.0.0.1:{port}");
    // Download from the files route with 64 KiB windows (nghttp -w 16 -W 16).
    let out = Command::new("timeout")
        .args([
            "60",
            "nghttp",
            "-w",
            "16",
            "-W",
            "16",
            &format!("{base}/files/big.bin"),
        ])
        .output()
        .expect("nghttp");
    assert!(out.stdout == data, "download: {} bytes", out.stdout.len());
    // Upload through the proxy (tether's 256 KiB stream window), echoed back: 32 MiB
    // each way through the upstream.
    let (v, code, body) = h2c(
        &format!("{base}/echo"),
        &["--data-binary", &format!("@{}", file.display())],
    );
    assert_eq!((v.as_str(), code), ("2", 200));
    assert!(body == data, "upload echoed {} bytes", body.len());
}

/// A frame header: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn rapid_reset_gets_enhance_your_calm_and_others_are_served() {
    let dir = TempDir::new("h2-reset");
    dir.write("www/files/a.txt", b"still here\n");
    let (port, _up, _t) = h2_tether(&dir, "");
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    // GET / http, :path /files/a.txt as a literal, :authority localhost.
    let mut block = vec![0x82, 0x86, 0x04, 12];
    block.extend_from_slice(b"/files/a.txt");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"localhost");
    for i in 0..300u32 {
        let id = 2 * i + 1;
        out.extend(frame(0x1, 0x5, id, &block));
        out.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&out);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    // Find the GOAWAY among the frames tether wrote.
    let mut at = 0;
    let mut code = None;
    while at + 9 <= got.len() {
        let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
        if got[at + 3] == 0x7 && at + 9 + len <= got.len() && len >= 8 {
            let p = &got[at + 9..];
            code = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + len;
    }
    assert_eq!(
        code,
        Some(0xb),
        "GOAWAY ENHANCE_YOUR_CALM expected; {} bytes",
        got.len()
    );
    let (v, code, body) = h2c(&format!("http://127.0.0.1:{port}/files/a.txt"), &[]);
    assert_eq!(
        (v.as_str(), code, &body[..]),
        ("2", 200, &b"still here\n"[..])
    );
}

/// The base64 SHA-256 of a certificate's SubjectPublicKeyInfo (what Chromium's
/// `--ignore-certificate-errors-spki-list` takes), by openssl.
fn spki_sha256(cert: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(hash.len(), 44, "SPKI hash: {hash:?}");
    hash
}

#[test]
fn chromium_loads_a_page_of_many_assets_over_https_h2() {
    let dir = TempDir::new("h2-chromium");
    let Some(chromium) = Chromium::find(dir.path()) else {
        return;
    };
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    // 15 images and 15 scripts; each script adds a line to the page.
    const N: usize = 15;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";
    let mut page = String::from("<!doctype html><html><body><h1>assets over h2</h1>\n");
    for i in 0..N {
        dir.write(&format!("www/files/img{i}.png"), png);
        dir.write(
            &format!("www/files/s{i}.js"),
            format!("document.body.insertAdjacentHTML('beforeend', '<p>script {i} ran</p>');")
                .as_bytes(),
        );
        page +=
            &format!("<img src=\"/files/img{i}.png\"><script src=\"/files/s{i}.js\"></script>\n");
    }
    page += "</body></html>\n";
    dir.write("www/files/index.html", page.as_bytes());
    let tls = format!(
        "tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}",
        cert.display(),
        key.display()
    );
    let (port, _up, _t) = h2_tether(&dir, &tls);
    let spki = format!(
        "--ignore-certificate-errors-spki-list={}",
        spki_sha256(&cert)
    );
    let dom = chromium.dump_dom_with(
        &[&spki, "--host-resolver-rules=MAP localhost 127.0.0.1"],
        &format!("https://localhost:{port}/files/index.html"),
    );
    assert!(dom.contains("<h1>assets over h2</h1>"), "DOM: {dom}");
    for i in 0..N {
        assert!(
            dom.contains(&format!("<p>script {i} ran</p>")),
            "script {i}: {dom}"
        );
    }
    // Every asset was fetched, and over HTTP/2.
    let log = dir.path().join("access.log");
    let all_h2 = |l: &str| {
        l.contains("\"GET /files/index.html HTTP/2.0\" 200")
            && (0..N).all(|i| {
                l.contains(&format!("\"GET /files/img{i}.png HTTP/2.0\" 200"))
                    && l.contains(&format!("\"GET /files/s{i}.js HTTP/2.0\" 200"))
            })
    };
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(&log)
            .is_ok_and(|l| all_h2(&l))),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("HTTP/1.1\""),
        "an asset over HTTP/1.1: {text}"
    );
}

#[test]
fn chromium_websocket_over_https_h2_by_extended_connect() {
    // Chromium opens `wss://` on the HTTP/2 connection it already has when tether sends
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441). The page's `<img src="/wait?n=1">` is
    // answered by the echo server only after it echoed a message, so the load event (and
    // --dump-dom) comes after the WebSocket's round trip.
    let dir = TempDir::new("h2-chromium-ws");
    let Some(chromium) = Chromium::find(dir.path()) else {
        return;
    };
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    dir.write(
        "www/files/ws.html",
        br#"<!doctype html><html><body><p id="s">waiting</p><script>
const ws = new WebSocket("wss://" + location.host + "/chat");
ws.onopen = () => ws.send("hi from chromium");
ws.onmessage = (e) => { document.getElementById("s").textContent = "got " + e.data; };
ws.onerror = () => { document.getElementById("s").textContent = "error"; };
</script><img src="/wait?n=1"></body></html>
"#,
    );
    let (port, up) = (free_port(), free_port());
    let _echo = ws_echo_server(up);
    let tls = format!(
        "tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}",
        cert.display(),
        key.display()
    );
    let _t = tether(
        &dir,
        &config(port, up, &dir.path().join("www"), &tls),
        &[port],
    );
    let spki = format!(
        "--ignore-certificate-errors-spki-list={}",
        spki_sha256(&cert)
    );
    let dom = chromium.dump_dom_with(
        &[&spki, "--host-resolver-rules=MAP localhost 127.0.0.1"],
        &format!("https://localhost:{port}/files/ws.html"),
    );
    assert!(
        dom.contains("<p id=\"s\">got echo:hi from chromium</p>"),
        "DOM: {dom}"
    );
    // The WebSocket went over HTTP/2 (logged when its stream ends: Chromium's exit).
    let log = dir.path().join("access.log");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("\"GET /chat HTTP/2.0\" 200"))),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
