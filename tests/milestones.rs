//! eXpServer's milestones on tether's fixed ports (8001, 8002, upstream 3000), with real
//! `curl`, `nc` and `python3 -m http.server 3000`: the embedded default config, and
//! `examples/configs/stage13.toml`. Both use the same fixed ports, so they take turns.

mod common;

use std::sync::Mutex;

use common::*;

static FIXED_PORTS: Mutex<()> = Mutex::new(());

/// A python upstream on port 3000 with a text file and a 1 MiB binary.
fn upstream_3000(dir: &TempDir) -> (Proc, Vec<u8>, Vec<u8>) {
    let text = b"upstream text\nline two\n".to_vec();
    let binary = noise(1 << 20, 42);
    dir.write("up/hello.txt", &text);
    dir.write("up/blob.bin", &binary);
    (python_http(&dir.path().join("up"), 3000), text, binary)
}

#[test]
fn default_config_proxies_8001_and_serves_public_on_8002() {
    let _guard = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("default");
    let (_py, text, binary) = upstream_3000(&dir);
    let sample = std::fs::read(repo().join("public/sample.txt")).expect("public/sample.txt");
    dir.write("run/public/sample.txt", &sample);
    let run = dir.path().join("run");
    let _t = tether_args(&run, &[], &[8001, 8002]);

    // Through 8001, byte for byte what 3000 serves.
    for name in ["hello.txt", "blob.bin"] {
        let (direct_code, direct) = get(&format!("http://127.0.0.1:3000/{name}"));
        let (code, via) = get(&format!("http://127.0.0.1:8001/{name}"));
        assert_eq!((direct_code, code), (200, 200), "{name}");
        assert_eq!(via.len(), direct.len(), "{name}");
        assert!(via == direct, "{name}: body differs through tether");
    }
    assert_eq!(get("http://127.0.0.1:8001/hello.txt").1, text);
    assert_eq!(get("http://127.0.0.1:8001/blob.bin").1, binary);

    // 8002 serves ./public.
    let (code, body) = get("http://127.0.0.1:8002/sample.txt");
    assert_eq!(code, 200);
    assert_eq!(body, sample);
}

#[test]
fn stage13_tcp_tunnel_and_file_port() {
    let _guard = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("stage13");
    let (_py, text, binary) = upstream_3000(&dir);
    let sample = std::fs::read(repo().join("public/sample.txt")).expect("public/sample.txt");
    dir.write("run/public/sample.txt", &sample);
    let cfg = repo().join("examples/configs/stage13.toml");
    let _t = tether_args(
        &dir.path().join("run"),
        &[cfg.to_str().unwrap()],
        &[8001, 8002],
    );

    // nc on the file port prints the file, then tether closes.
    let out = nc(&["-w", "5", "127.0.0.1", "8002"], b"");
    assert_eq!(out, sample);

    // Raw HTTP typed through the tcp port reaches the upstream.
    let out = raw(8001, b"GET /hello.txt HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let s = String::from_utf8_lossy(&out);
    assert!(s.starts_with("HTTP/1.0 200"), "{s}");
    assert!(s.ends_with(std::str::from_utf8(&text).unwrap()), "{s}");

    // curl through the tunnel, text and binary, byte for byte.
    assert_eq!(get("http://127.0.0.1:8001/hello.txt"), (200, text));
    assert_eq!(get("http://127.0.0.1:8001/blob.bin"), (200, binary));
}
