//! `${NAME}` / `${NAME:-default}` in a config, filled from the environment when the file
//! is read, end to end: the real binary listens where the environment says and answers with
//! the values it gave; a missing variable is `path:line:col` at the variable.

mod common;

use std::process::{Command, Stdio};

use common::*;

const CONFIG: &str = "[[server]]\nlisten = [\"127.0.0.1:${TETHER_TEST_PORT}\"]\n\n\
    [[server.route]]\npath = \"/\"\nredirect = \"${TETHER_TEST_TARGET:-https://default.example/}$$x\"\n";

#[test]
fn environment_variables_fill_the_config_once() {
    let dir = TempDir::new("config-env");
    let port = free_port();
    let cfg = dir.write("tether.toml", CONFIG.as_bytes());
    let log = dir.path().join("tether.log");
    let child = Command::new(TETHER)
        .arg(&cfg)
        .current_dir(dir.path())
        .env("TETHER_TEST_PORT", port.to_string())
        .env_remove("TETHER_TEST_TARGET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn tether");
    let _t = Proc {
        child,
        log: Some(log),
    };
    wait_port(port);
    let out = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "https://default.example/$x",
        "the default, and $$ as a literal $"
    );

    // Not set, no default: refused at the variable's own line and column.
    let out = Command::new(TETHER)
        .args(["check", cfg.to_str().expect("utf-8")])
        .env_remove("TETHER_TEST_PORT")
        .output()
        .expect("tether check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tether.toml:2:22: `${TETHER_TEST_PORT}` is not set"),
        "{err}"
    );
}
