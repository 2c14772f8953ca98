//! The command line: `--version`, `--print-default-config`, `check` with `path:line:col`
//! errors, a bad config refused at start, and the embedding examples run for real.

mod common;
mod tls_support;

use std::process::Command;

use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(TETHER)
        .args(args)
        .output()
        .expect("run tether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_git_hash() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("tether {} (git ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn default_config_prints_and_checks() {
    let (code, out, _) = run(&["--print-default-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("listen = \"0.0.0.0:8001\""), "{out}");
    assert!(out.contains("upstream = \"127.0.0.1:3000\""), "{out}");
    assert!(out.contains("root = \"public\""), "{out}");
    assert!(out.contains("listen = \"127.0.0.1:8004\""), "{out}");
    let dir = TempDir::new("cli-default");
    let p = dir.write("default.toml", out.as_bytes());
    let (code, out, err) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (3 listeners)"), "{out}");
    let (code, out, _) = run(&[
        "check",
        repo()
            .join("examples/configs/stage13.toml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_reports_path_line_col() {
    let dir = TempDir::new("cli-bad");
    let cases: [(&str, &str, &str); 12] = [
        ("top.toml", "server_name = \"x\"\nworkerz = 2\n", ":2:1: unknown field `workerz`"),
        ("nested.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\n  upstreem = \"127.0.0.1:2\"\n",
            ":4:3: unknown field `upstreem`"),
        ("addr.toml", "[[listener]]\nlisten = \"localhost\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:2\"\n",
            ":2:10: `listen`: not an address:port"),
        ("proto.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"udp\"\nupstream = \"127.0.0.1:2\"\n",
            ":3:12: unknown variant `udp`"),
        ("syntax.toml", "[[listener]\n", ":1:"),
        ("missing.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\n", ":1:1: a listener needs exactly one of"),
        ("zero.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:2\"\nidle_timeout_ms = 0\n",
            ":5:19: `idle_timeout_ms` must be above 0"),
        // Nothing to serve: an error rather than a tether that listens nowhere.
        ("empty.toml", "", ":1:1: no listener"),
        ("comments.toml", "# nothing yet\nserver_name = \"x\"\n[admin]\nlisten = \"127.0.0.1:1\"\n", ":1:1: no listener"),
        // A second listener on an address points at its own `listen`.
        ("dup.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:2\"\n\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:3\"\n",
            ":7:10: two listeners on 127.0.0.1:1"),
        ("dup-server.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nroot = \".\"\n\n[[server]]\n  listen = [\"127.0.0.1:9\", \"127.0.0.1:1\"]\n",
            ":7:28: two listeners on 127.0.0.1:1"),
        ("tcp-header.toml", "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:2\"\nheader_timeout_ms = 5\n",
            ":5:21: `header_timeout_ms` is for http listeners"),
    ];
    fails_at(&dir, &cases);
    let (code, _, err) = run(&["check", "/nonexistent/tether.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("/nonexistent/tether.toml:1:1: cannot read"),
        "{err}"
    );
}

#[test]
fn check_xps_json_points_at_the_value_at_fault() {
    // eXpServer's JSON: a mistake that parses fine is reported where it is written, not at 1:1.
    let dir = TempDir::new("cli-xps");
    let routes = "{\n  \"servers\": [{\n    \"listeners\": [{\"host\": \"127.0.0.1\", \"port\": 8001}],\n    \"routes\": [\n      {\"req_path\": \"/\", \"type\": \"file_serve\", \"dir_path\": \".\"},\n      {\"req_path\": \"/api\", \"type\": \"reverse_proxy\",\n       \"upstreams\": [\"127.0.0.1:3000\"],\n       \"ip_whitelist\": [\"10.0.0.0/8\", \"10.1.2.300\"]}\n    ]\n  }]\n}\n";
    let listeners = "{\"servers\": [{\"listeners\": [\n  {\"host\": \"127.0.0.1\", \"port\": 8001},\n  {\"host\": \"127.0.0.1\", \"port\": 8001}]}]}\n";
    let cases = [
        (
            "routes.json",
            routes,
            ":8:39: servers[0].routes[1]: not an address: \"10.1.2.300\"",
        ),
        (
            "listeners.json",
            listeners,
            ":3:33: servers[0].listeners[1]: 127.0.0.1:8001 is already servers[0].listeners[0]",
        ),
    ];
    fails_at(&dir, &cases);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = TempDir::new("cli-inuse");
    let p = dir.write(
        "t.toml",
        format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \".\"\n")
            .as_bytes(),
    );
    let (code, _, err) = run(&[p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// The example binaries built next to this test's executable.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join(name)
}

#[test]
fn embedding_examples_echo_and_reverse() {
    for (name, input, want) in [
        ("embed_echo", &b"hello\nworld"[..], &b"hello\nworld"[..]),
        (
            "embed_reverse",
            b"hello\nstressed\nabc",
            b"olleh\ndesserts\ncba",
        ),
    ] {
        let port = free_port();
        let child = Command::new(example(name))
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run example {name} (built by cargo test): {e}"));
        let _p = Proc { child, log: None };
        wait_port(port);
        assert_eq!(raw(port, input), want, "{name}");
        let big = noise(3 << 20, 5);
        if name == "embed_echo" {
            assert!(raw(port, &big) == big, "echo of 3 MiB differs");
        }
    }
}

#[test]
fn every_shipped_example_config_checks() {
    // The examples' certificate paths are relative (`certs/fullchain.pem`, `certs/privkey.pem`):
    // check from a directory where a certificate made now stands there.
    let work = TempDir::new("cli-examples");
    let ca = tls_support::Ca::new(work.path(), "ca");
    let (cert, key) = ca.leaf("site", &["sim.example.org"], tls_support::Key::P256, 90);
    std::fs::create_dir_all(work.path().join("certs")).expect("certs dir");
    std::fs::copy(&cert, work.path().join("certs/fullchain.pem")).expect("cert");
    std::fs::copy(&key, work.path().join("certs/privkey.pem")).expect("key");
    let dir = repo().join("examples/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/configs") {
        let path = entry.expect("entry").path();
        let out = Command::new(TETHER)
            .args(["check", path.to_str().unwrap()])
            .current_dir(work.path())
            .output()
            .expect("run tether");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {text}", path.display());
        n += 1;
    }
    assert!(n >= 3, "only {n} example configs");
}

#[test]
fn default_config_starts_without_a_warning() {
    // The embedded default config exactly as `tether` runs it with no argument, except for
    // its addresses: free loopback ports instead of 0.0.0.0:8001 and the fixed 800x ports
    // (tests stay on loopback and must not clash with anything else running).
    let (code, text, _) = run(&["--print-default-config"]);
    assert_eq!(code, 0);
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut cfg = text.replace("0.0.0.0:", "127.0.0.1:");
    for (fixed, port) in [8001, 8002, 8004, 8005].into_iter().zip(ports) {
        let old = format!("127.0.0.1:{fixed}\"");
        assert!(
            cfg.contains(&old),
            "{old} not in the default config:\n{text}"
        );
        cfg = cfg.replace(&old, &format!("127.0.0.1:{port}\""));
    }
    let dir = TempDir::new("cli-quiet");
    let path = dir.write("default.toml", cfg.as_bytes());
    // Where a user runs it (the repository, a release archive) has `public/`; a missing
    // files root is warned about (tests/ops_hazards.rs), so give it one.
    dir.write("public/index.html", b"<p>tether</p>\n");
    let log = dir.path().join("tether.log");
    // Started as a user would: supervised, no RUST_LOG (info level).
    let child = Command::new(TETHER)
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn tether");
    let mut p = Proc {
        child,
        log: Some(log),
    };
    let started = eventually(std::time::Duration::from_secs(10), || {
        p.log_text().contains(" running (pid ")
    });
    assert!(started, "alive={}; log:\n{}", p.alive(), p.log_text());
    for port in ports {
        wait_port(port);
    }
    let log = p.log_text();
    // The start was logged (so an empty log cannot pass), the admin key's line included.
    assert!(
        log.contains(" INFO ") && log.contains("admin key:"),
        "{log}"
    );
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(loud.is_empty(), "the default config starts with {loud:?}");
}

/// Each `(file name, text, want)`: `tether check` on it, and running with it, fail with
/// exit code 1 and stderr starting with the file's path and `want` (`:line:col: message`).
fn fails_at(dir: &TempDir, cases: &[(&str, &str, &str)]) {
    for &(name, text, want) in cases {
        let p = dir.write(name, text.as_bytes());
        let ps = p.to_str().expect("utf-8 temp path");
        let (code, out, err) = run(&["check", ps]);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(
            err.starts_with(&format!("{ps}{want}")),
            "{name}: want {ps}{want}, got {err}"
        );
        // Running with it fails the same way, before binding anything.
        let (code, _, err2) = run(&[ps]);
        assert_eq!(code, 1, "{name}");
        assert_eq!(err, err2, "{name}");
    }
}
