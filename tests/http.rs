//! The minimal `http` listener end to end with curl, nc and python upstreams: proxying with
//! forwarding headers, 502 for a dead upstream, files with types, 404/400/403/301/405, HEAD.

mod common;

use common::*;

fn proxy_config(port: u16, upstream: u16) -> String {
    format!("server_name = \"tether-test\"\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{upstream}\"\n")
}

#[test]
fn proxy_adds_forwarding_headers_and_drops_hop_by_hop() {
    let dir = TempDir::new("http-fwd");
    let (up, port) = (free_port(), free_port());
    let _py = python_echo_head(up);
    let _t = tether(&dir, &proxy_config(port, up), &[port]);
    let out = curl(&[
        "-H",
        "X-Forwarded-For: 10.1.2.3",
        "-H",
        "Connection: keep-alive, X-Drop",
        "-H",
        "X-Drop: secret",
        &format!("http://127.0.0.1:{port}/some/path?q=1"),
    ]);
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.starts_with("GET /some/path?q=1 HTTP/1.1\r\n"),
        "{seen}"
    );
    assert_eq!(
        header(&seen, "X-Forwarded-For"),
        Some("10.1.2.3, 127.0.0.1"),
        "{seen}"
    );
    assert_eq!(header(&seen, "X-Real-IP"), Some("127.0.0.1"), "{seen}");
    assert_eq!(header(&seen, "X-Forwarded-Proto"), Some("http"), "{seen}");
    assert_eq!(
        header(&seen, "X-Forwarded-Host"),
        Some(format!("127.0.0.1:{port}").as_str()),
        "{seen}"
    );
    assert_eq!(header(&seen, "Connection"), None, "{seen}");
    assert_eq!(header(&seen, "X-Drop"), None, "{seen}");
}

#[test]
fn dead_upstream_is_502_with_server_and_date() {
    let dir = TempDir::new("http-502");
    let (dead, port) = (free_port(), free_port());
    let t = tether(&dir, &proxy_config(port, dead), &[port]);
    let out = curl(&["-i", &format!("http://127.0.0.1:{port}/")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{s}");
    assert_eq!(header(&s, "Server"), Some("tether-test"), "{s}");
    assert!(
        header(&s, "Date").is_some_and(|d| d.ends_with(" GMT")),
        "{s}"
    );
    assert!(t.wait_log("unreachable"));
}

#[test]
fn files_with_types_and_errors() {
    let dir = TempDir::new("http-files");
    let root = dir.path().join("www");
    dir.write("www/index.html", b"<h1>home</h1>\n");
    dir.write("www/a.txt", b"text\n");
    dir.write("www/img/p.png", &noise(3000, 3));
    dir.write("www/data.json", b"{}");
    dir.write("www/empty/.keep", b"");
    dir.write("secret.txt", b"outside the root\n");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    let port = free_port();
    let _t = tether(&dir, &files_config(port, &root), &[port]);
    let base = format!("http://127.0.0.1:{port}");

    let types = [
        ("/a.txt", "text/plain; charset=utf-8"),
        ("/img/p.png", "image/png"),
        ("/data.json", "application/json"),
        ("/", "text/html; charset=utf-8"),
    ];
    for (path, ty) in types {
        let out = curl(&["-i", &format!("{base}{path}")]);
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {s}");
        assert_eq!(header(&s, "Content-Type"), Some(ty), "{path}");
        assert_eq!(header(&s, "Server"), Some("tether"), "{path}");
        assert!(header(&s, "Date").is_some(), "{path}");
        assert!(header(&s, "Last-Modified").is_some(), "{path}");
    }
    assert_eq!(get(&format!("{base}/img/p.png")).1, noise(3000, 3));
    assert_eq!(get(&format!("{base}/")).1, b"<h1>home</h1>\n");
    assert_eq!(get(&format!("{base}/missing.txt")).0, 404);
    // A directory without an index gets a listing (on by default, as in eXpServer).
    assert_eq!(get(&format!("{base}/empty/")).0, 200);
    assert_eq!(get(&format!("{base}/escape.txt")).0, 403);
    assert_eq!(
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{base}/img")
        ])
        .stdout,
        format!("301 {base}/img/").into_bytes()
    );
    // Traversal, plain and encoded, never leaves the root.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/img/../../secret.txt",
    ] {
        let out = raw(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        let s = String::from_utf8_lossy(&out);
        assert!(s.starts_with("HTTP/1.1 400 "), "{path}: {s}");
        assert!(!s.contains("outside the root"), "{path}");
    }
    // HEAD: the head only.
    let out = curl(&["-I", &format!("{base}/a.txt")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(header(&s, "Content-Length"), Some("5"), "{s}");
    assert!(s.ends_with("\r\n\r\n"), "{s}");
    // Other methods.
    let out = curl(&["-i", "-X", "POST", "--data", "x", &format!("{base}/a.txt")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("HTTP/1.1 405 "), "{s}");
    assert_eq!(header(&s, "Allow"), Some("GET, HEAD"), "{s}");
}

#[test]
fn malformed_heads_get_a_status_and_the_process_survives() {
    let dir = TempDir::new("http-bad");
    dir.write("www/a.txt", b"ok\n");
    let (up, port, fport) = (free_port(), free_port(), free_port());
    let _py = python_echo_head(up);
    let config = format!(
        "{}\n{}",
        proxy_config(port, up),
        files_config(fport, &dir.path().join("www"))
    );
    let mut t = tether(&dir, &config, &[port, fport]);
    let cases: [(&[u8], &str); 6] = [
        (b"GARBAGE\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "400"), // cut short, then FIN
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"),
        (b"\x00\x01\x02\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n", "400"),
    ];
    for p in [port, fport] {
        for (req, status) in cases {
            let out = raw(p, req);
            let s = String::from_utf8_lossy(&out);
            assert!(
                s.starts_with(&format!("HTTP/1.1 {status} ")),
                "{req:?} on {p}: {s}"
            );
        }
        // A head over 16 KiB: 431.
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..400 {
            big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        let s = String::from_utf8_lossy(&raw(p, &big)).to_string();
        assert!(s.starts_with("HTTP/1.1 431 "), "{s}");
    }
    assert!(t.alive());
    assert_eq!(
        get(&format!("http://127.0.0.1:{fport}/a.txt")),
        (200, b"ok\n".to_vec())
    );
}

#[test]
fn large_file_through_proxy_and_from_disk_is_byte_exact() {
    let dir = TempDir::new("http-big");
    let blob = noise(8 << 20, 99);
    dir.write("www/blob.bin", &blob);
    let (up, port, fport) = (free_port(), free_port(), free_port());
    let _py = python_http(&dir.path().join("www"), up);
    let config = format!(
        "{}\n{}",
        proxy_config(port, up),
        files_config(fport, &dir.path().join("www"))
    );
    let _t = tether(&dir, &config, &[port, fport]);
    for p in [port, fport] {
        let (code, body) = get(&format!("http://127.0.0.1:{p}/blob.bin"));
        assert_eq!(code, 200);
        assert!(body == blob, "port {p}: {} bytes", body.len());
    }
}
