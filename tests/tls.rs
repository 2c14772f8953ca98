//! TLS on listeners, end to end: the real binary, `curl --cacert` against a CA made at test
//! time, `openssl s_client` for SNI, ALPN and versions, python upstreams behind it.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tls_support::{s_client, Ca, Key};

fn https(port: u16, ca: &Ca, path: &str, extra: &[&str]) -> std::process::Output {
    let url = format!("https://localhost:{port}{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut args = vec![
        "--cacert",
        ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-i",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[test]
fn https_files_and_proxy_with_forwarded_proto() {
    let dir = TempDir::new("tls-basic");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    // nginx `root` semantics: the route path stays in the file path.
    dir.write("www/files/hello.txt", b"hello over tls\n");
    let (tls_port, up_port) = (free_port(), free_port());
    let _up = python_echo_head(up_port);
    let config = format!(
        r#"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{up_port}"]

[[server]]
listen = ["127.0.0.1:{tls_port}"]
tls = {{ certificates = [{{ cert = "{}", key = "{}" }}] }}
hsts = "max-age=600"

[[server.route]]
path = "/files"
root = "{}"

[[server.route]]
path = "/"
proxy = "app"
"#,
        cert.display(),
        key.display(),
        dir.path().join("www").display()
    );
    let t = tether(&dir, &config, &[tls_port]);
    // The kTLS probe says at start what this kernel offers (per its list of ULPs).
    let ulps = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
    let want = if ulps.split_whitespace().any(|u| u == "tls") {
        "kTLS: this kernel offers it"
    } else {
        "kTLS: this kernel has no TLS upper-layer protocol"
    };
    assert!(t.wait_log(want), "{want}: {}", t.log_text());
    let out = https(tls_port, &ca, "/files/hello.txt", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("hello over tls"), "{text}");
    assert_eq!(
        header(&text, "strict-transport-security"),
        Some("max-age=600"),
        "{text}"
    );
    let out = https(tls_port, &ca, "/app", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("X-Forwarded-Proto: https"), "{text}");
    assert_eq!(
        header(&text, "strict-transport-security"),
        Some("max-age=600"),
        "{text}"
    );
    // Without --cacert the certificate is not trusted: curl refuses.
    let url = format!("https://127.0.0.1:{tls_port}/");
    let out = curl(&[&url]);
    assert!(!out.status.success());
}

#[test]
fn keep_alive_and_large_body_over_tls() {
    let dir = TempDir::new("tls-ka");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let big = noise(8 * 1024 * 1024 + 123, 7);
    dir.write("www/big.bin", &big);
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        dir.path().join("www").display(),
        cert.display(),
        key.display()
    );
    let _t = tether(&dir, &config, &[port]);
    let out_file = dir.path().join("got.bin");
    let url = format!("https://localhost:{port}/big.bin");
    let resolve = format!("localhost:{port}:127.0.0.1");
    // Two downloads on one connection (curl reuses it for the second URL).
    let out = curl(&[
        "--cacert",
        ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-o",
        out_file.to_str().unwrap(),
        &url,
        "-o",
        "/dev/null",
        &url,
        "-w",
        "%{num_connects}\n",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(&out_file).unwrap();
    assert!(
        got == big,
        "download differs: {} vs {} bytes",
        got.len(),
        big.len()
    );
    let counts = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        counts.lines().collect::<Vec<_>>(),
        ["1", "0"],
        "second request reused the connection"
    );
}

#[test]
fn sni_picks_the_certificate_and_strict_sni_refuses_unknown_names() {
    let dir = TempDir::new("tls-sni");
    let ca = Ca::new(dir.path(), "ca");
    let (a_cert, a_key) = ca.leaf("a", &["a.test"], Key::P256, 30);
    let (w_cert, w_key) = ca.leaf("w", &["*.wild.test"], Key::Rsa2048, 30);
    let (port, strict) = (free_port(), free_port());
    dir.write("www/x.txt", b"x");
    let root = dir.path().join("www");
    let certs = format!(
        "[{{ cert = \"{}\", key = \"{}\" }}, {{ cert = \"{}\", key = \"{}\" }}]",
        a_cert.display(),
        a_key.display(),
        w_cert.display(),
        w_key.display()
    );
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{r}\"\ntls = {{ certificates = {certs} }}\n\n\
         [[listener]]\nlisten = \"127.0.0.1:{strict}\"\nprotocol = \"http\"\nroot = \"{r}\"\ntls = {{ certificates = {certs}, strict_sni = true, min_version = \"1.3\" }}\n",
        r = root.display()
    );
    let t = tether(&dir, &config, &[port, strict]);
    let ca_s = ca.cert.to_str().unwrap();
    let out = s_client(port, &["-servername", "x.wild.test", "-CAfile", ca_s], b"");
    assert!(
        out.contains("CN = x.wild.test")
            || out.contains("CN=*.wild.test")
            || out.contains("CN = *.wild.test"),
        "{out}"
    );
    assert!(out.contains("Verify return code: 0"), "{out}");
    let out = s_client(port, &["-servername", "a.test", "-CAfile", ca_s], b"");
    assert!(
        out.contains("CN = a.test") || out.contains("CN=a.test"),
        "{out}"
    );
    // An unknown name gets the default (the first) on the lenient listener...
    let out = s_client(port, &["-servername", "other.test"], b"");
    assert!(
        out.contains("CN = a.test") || out.contains("CN=a.test"),
        "{out}"
    );
    // ... and a failed handshake on the strict one, logged.
    let out = s_client(strict, &["-servername", "other.test"], b"");
    assert!(!out.contains("CN = a.test"), "{out}");
    assert!(t.wait_log("no certificate for SNI \"other.test\""));
    // min_version = "1.3": a TLS 1.2 client is refused, 1.3 is served.
    let out = s_client(strict, &["-servername", "a.test", "-tls1_2"], b"");
    assert!(!out.contains("CN = a.test"), "{out}");
    let out = s_client(strict, &["-servername", "a.test", "-tls1_3"], b"");
    assert!(out.contains("TLSv1.3"), "{out}");
    // ALPN: http/1.1 offered by default.
    let out = s_client(
        port,
        &["-servername", "a.test", "-alpn", "h2,http/1.1"],
        b"",
    );
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
}

#[test]
fn plain_http_and_garbage_on_a_tls_port_are_closed_and_logged() {
    let dir = TempDir::new("tls-bad");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    dir.write("www/x.txt", b"still here");
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        dir.path().join("www").display(),
        cert.display(),
        key.display()
    );
    let mut t = tether(&dir, &config, &[port]);
    for input in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"\x16\x03\x01\x00\x05garbagegarbage"[..],
        &[0u8; 300][..],
    ] {
        let mut s = TcpStream::connect(addr(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(input).unwrap();
        let mut buf = Vec::new();
        // The connection is closed (an alert at most), not held open.
        let _ = s.read_to_end(&mut buf);
        assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1"));
    }
    assert!(t.wait_log("TLS handshake from 127.0.0.1"));
    assert!(t.alive());
    let out = https(port, &ca, "/x.txt", &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("still here"));
}

#[test]
fn redirect_http_answers_308_to_https() {
    let dir = TempDir::new("tls-redirect");
    let (plain, other) = (free_port(), free_port());
    let config = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{plain}\"]\nredirect_http = true\n[[server.route]]\npath = \"/\"\nstatus_page = \"json\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{other}\"]\nredirect_http = 8443\n[[server.route]]\npath = \"/\"\nstatus_page = \"json\"\n"
    );
    let _t = tether(&dir, &config, &[plain, other]);
    let out = curl(&["-i", &format!("http://127.0.0.1:{plain}/a/b?c=d")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 308"), "{text}");
    assert_eq!(header(&text, "location"), Some("https://127.0.0.1/a/b?c=d"));
    let out = curl(&[
        "-i",
        "-H",
        "Host: example.org:8080",
        &format!("http://127.0.0.1:{other}/x"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        header(&text, "location"),
        Some("https://example.org:8443/x"),
        "{text}"
    );
}

#[test]
fn check_refuses_a_key_that_does_not_match_and_points_at_it() {
    let dir = TempDir::new("tls-check");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, _) = ca.leaf("one", &["localhost"], Key::P256, 30);
    let (_, other_key) = ca.leaf("two", &["localhost"], Key::P256, 30);
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nroot = \".\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        cert.display(),
        other_key.display()
    );
    let path = dir.write("bad.toml", config.as_bytes());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("does not match certificate"), "{err}");
    // A garbage certificate file: the chain does not parse.
    let junk = dir.write(
        "junk.pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let config = config.replace(cert.to_str().unwrap(), junk.to_str().unwrap());
    let path = dir.write("junk.toml", config.as_bytes());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("junk.toml:5:") && err.contains("junk.pem"),
        "{err}"
    );
}

/// `tests/support_upstream.py` over HTTPS with `cert`/`key`.
fn https_upstream(port: u16, cert: &std::path::Path, key: &std::path::Path) -> Proc {
    let script = repo().join("tests/support_upstream.py");
    let child = std::process::Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(cert)
        .arg(key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let p = Proc { child, log: None };
    wait_port(port);
    p
}

#[test]
fn tls_upstreams_verified_pooled_and_health_checked() {
    let dir = TempDir::new("tls-up");
    let ca = Ca::new(dir.path(), "ca");
    let other_ca = Ca::new(dir.path(), "other");
    let (cert, key) = ca.leaf("backend", &["backend.test", "127.0.0.1"], Key::P256, 30);
    let (up, front, bad, loose) = (free_port(), free_port(), free_port(), free_port());
    let _b = https_upstream(up, &cert, &key);
    let config = format!(
        r#"
[[upstream]]
name = "secure"
servers = ["https://127.0.0.1:{up}"]
tls = {{ ca = "{ca}", sni = "backend.test" }}
[upstream.health]
path = "/whoami"
interval_ms = 200

[[upstream]]
name = "wrong_ca"
servers = ["127.0.0.1:{up}"]
tls = {{ ca = "{other}" }}
[upstream.health]
path = "/whoami"
interval_ms = 200

[[upstream]]
name = "unverified"
servers = ["127.0.0.1:{up}"]
tls = {{ verify = false }}

[[server]]
listen = ["127.0.0.1:{front}"]
[[server.route]]
path = "/"
proxy = "secure"

[[server]]
listen = ["127.0.0.1:{bad}"]
[[server.route]]
path = "/"
proxy = "wrong_ca"

[[server]]
listen = ["127.0.0.1:{loose}"]
[[server.route]]
path = "/"
proxy = "unverified"
"#,
        ca = ca.cert.display(),
        other = other_ca.cert.display(),
    );
    let t = tether(&dir, &config, &[front, bad, loose]);
    // Several requests on one client connection reuse one pooled TLS upstream connection:
    // the backend counts requests per connection.
    let url = format!("http://127.0.0.1:{front}/whoami");
    let out = curl(&[&url, &url, &url]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("n=1") && body.contains("n=3"), "{body}");
    // Health checks over TLS: the pool whose CA does not match goes down, the verified one
    // stays up.
    assert!(eventually(Duration::from_secs(10), || t
        .log_text()
        .lines()
        .any(
            |l| l.contains("pool wrong_ca server") && l.contains("down")
        )));
    assert!(!t
        .log_text()
        .lines()
        .any(|l| l.contains("pool secure server") && l.contains("down")));
    let (status, _) = get(&format!("http://127.0.0.1:{front}/whoami"));
    assert_eq!(status, 200);
    // An upstream certificate from another CA: 502 (503 once the checks marked it down),
    // and the log says why.
    let (status, _) = get(&format!("http://127.0.0.1:{bad}/whoami"));
    assert!(matches!(status, 502 | 503), "{status}");
    assert!(t.wait_log("TLS handshake with 127.0.0.1"));
    // verify = false: served, and the start log warned about it.
    let (status, _) = get(&format!("http://127.0.0.1:{loose}/whoami"));
    assert_eq!(status, 200);
    assert!(t.wait_log("not verified (verify = false)"));
}

#[test]
fn client_certificates_are_required_when_client_ca_is_set() {
    let dir = TempDir::new("tls-mtls");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let (client_cert, client_key) = ca.leaf("client", &["client.test"], Key::P256, 30);
    dir.write("www/x.txt", b"for clients with a certificate");
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}], client_ca = \"{}\" }}\n",
        dir.path().join("www").display(),
        cert.display(),
        key.display(),
        ca.cert.display()
    );
    let _t = tether(&dir, &config, &[port]);
    let out = https(
        port,
        &ca,
        "/x.txt",
        &[
            "--cert",
            client_cert.to_str().unwrap(),
            "--key",
            client_key.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("for clients with a certificate"), "{text}");
    let out = https(port, &ca, "/x.txt", &[]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("for clients"));
}

#[test]
fn tcp_listener_terminates_tls_and_tunnels_plaintext() {
    let dir = TempDir::new("tls-tcp");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let (port, up) = (free_port(), free_port());
    // A plain upstream that answers what the client sent, as HTTP.
    let _u = python_echo_head(up);
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:{up}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        cert.display(),
        key.display()
    );
    let _t = tether(&dir, &config, &[port]);
    let out = https(port, &ca, "/through-the-tunnel", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(text.contains("GET /through-the-tunnel"), "{text}");
}

#[test]
fn sessions_resume_with_tickets_on_tls12_and_tls13() {
    let dir = TempDir::new("tls-resume");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        dir.path().display(),
        cert.display(),
        key.display()
    );
    let _t = tether(&dir, &config, &[port]);
    for version in ["-tls1_2", "-tls1_3"] {
        let sess = dir.path().join(format!("sess{version}"));
        let sess = sess.to_str().unwrap();
        // TLS 1.3 tickets come after the handshake: send a request so s_client reads them,
        // and `-ign_eof` so it keeps reading (until tether closes after `Connection: close`)
        // instead of quitting at the end of its stdin, maybe before the tickets arrived.
        let req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let first = s_client(
            port,
            &[
                version,
                "-ign_eof",
                "-servername",
                "localhost",
                "-sess_out",
                sess,
            ],
            req,
        );
        assert!(first.contains("New, "), "{first}");
        let second = s_client(
            port,
            &[
                version,
                "-ign_eof",
                "-servername",
                "localhost",
                "-sess_in",
                sess,
            ],
            req,
        );
        assert!(second.contains("Reused, "), "{version}: {second}");
    }
}

#[test]
fn abandoned_handshakes_leave_no_descriptor_behind() {
    let dir = TempDir::new("tls-abandon");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    dir.write("www/x.txt", b"alive");
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}], handshake_timeout_ms = 500 }}\n",
        dir.path().join("www").display(),
        cert.display(),
        key.display()
    );
    let t = tether(&dir, &config, &[port]);
    let pid = t.pid();
    let baseline = fd_count(pid);
    // 1,000 clients that start a ClientHello and go away.
    for i in 0..1000 {
        let mut s = TcpStream::connect(addr(port)).unwrap();
        let partial: &[u8] = if i % 2 == 0 {
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        } else {
            b""
        };
        let _ = s.write_all(partial);
    }
    // 50 that stay open without finishing: closed by the handshake deadline.
    let held: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr(port)).unwrap();
            let _ = s.write_all(b"\x16\x03\x01\x02\x00");
            s
        })
        .collect();
    // Every held one hits the deadline (the log says so), then the descriptors are back.
    assert!(
        eventually(Duration::from_secs(10), || t
            .log_text()
            .matches("timed out")
            .count()
            >= 50),
        "{}",
        t.log_text()
    );
    assert!(
        eventually(Duration::from_secs(10), || fd_count(pid) <= baseline),
        "fds: {} now, {baseline} before",
        fd_count(pid)
    );
    drop(held);
    let out = https(port, &ca, "/x.txt", &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("alive"));
}

#[test]
fn websocket_over_wss_to_a_ws_backend() {
    use std::process::{Command, Stdio};
    let dir = TempDir::new("tls-wss");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let (up, port) = (free_port(), free_port());
    let server = Command::new("python3")
        .arg(repo().join("tests/support_ws.py"))
        .args(["server", &up.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 websockets server");
    let _server = Proc {
        child: server,
        log: None,
    };
    wait_port(up);
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        cert.display(),
        key.display()
    );
    let t = tether(&dir, &config, &[port]);
    // 50 text messages and a 1 MiB binary one, each echoed byte for byte.
    let got = ws_client(&format!("wss://localhost:{port}/chat"), 50, Some(&ca.cert));
    assert_eq!(got, "ok 50", "{}", t.log_text());
}
