//! Shared by the integration tests: real tools (Debian's `htpasswd`, `openssl`, python's
//! `argon2-cffi`) that make the hashes, a temporary directory, and a blocking wrapper
//! around `Verifier::check` with a bounded wait.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use base64::Engine as _;
use tether_auth::{AuthResult, Htpasswd, Verifier};

/// Longest wait for one answer (a debug build verifying argon2 with 64 MiB is the slowest).
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Whether `program args` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the tools the test needs are here. Without them the test prints `SKIPPED` and
/// passes, unless `CI` is set: then it fails (scripts/setup.sh must install them).
pub fn have(what: &[&str]) -> bool {
    let mut missing = Vec::new();
    for tool in what {
        let ok = match *tool {
            "htpasswd" => runs("sh", &["-c", "command -v htpasswd"]),
            "openssl" => runs("openssl", &["version"]),
            "argon2-cffi" => runs("python3", &["-c", "import argon2"]),
            other => runs("sh", &["-c", &format!("command -v {other}")]),
        };
        if !ok {
            missing.push(*tool);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing {missing:?} (apt-get install apache2-utils openssl; pip install argon2-cffi)"
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// Runs a command and returns its trimmed stdout; panics with its stderr on failure.
pub fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .trim()
        .to_string()
}

/// `user:hash` as `htpasswd -nb FLAGS user password` prints it.
pub fn htpasswd(flags: &[&str], user: &str, password: &str) -> String {
    let mut args = vec!["-nb"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[user, password]);
    output("htpasswd", &args)
}

/// An argon2 PHC string from python's argon2-cffi; `kind` is `ID`, `I` or `D`.
pub fn argon2_cffi(kind: &str, password: &str) -> String {
    let script = "import sys, argon2\n\
                  kind = getattr(argon2.Type, sys.argv[1])\n\
                  print(argon2.PasswordHasher(type=kind).hash(sys.argv[2]))";
    output("python3", &["-c", script, kind, password])
}

/// The `Authorization` value for `user:password`.
pub fn basic(user: &str, password: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}").into_bytes()
}

/// `check`, waiting (bounded) for the helper thread's answer when there is one.
pub fn check_wait(verifier: &Verifier, file: &Arc<Htpasswd>, header: &[u8]) -> AuthResult {
    let (tx, rx) = mpsc::channel();
    match verifier.check(
        file,
        Some(header),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    ) {
        Some(at_once) => at_once,
        None => rx
            .recv_timeout(ANSWER_WAIT)
            .expect("an answer from the helper thread"),
    }
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tether-auth-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Writes `lines` (one per line) to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write the file");
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
