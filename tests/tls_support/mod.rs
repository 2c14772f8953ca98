//! Test certificates made at test time with the `openssl` command (nothing checked in): a
//! CA, and leaf certificates it signs for given DNS names, with an ECDSA P-256 or RSA key.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA in `dir`: `ca.pem` and `ca.key`.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Key kinds for leaf certificates.
#[derive(Clone, Copy)]
pub enum Key {
    P256,
    Rsa2048,
}

impl Ca {
    /// A fresh CA named `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// A leaf certificate for `names` (DNS names, or IP addresses), valid `days` days:
    /// `<file>.pem` (the leaf, then the CA: a full chain) and `<file>.key`.
    pub fn leaf(&self, file: &str, names: &[&str], key: Key, days: u32) -> (PathBuf, PathBuf) {
        let dir = &self.dir;
        let key_path = dir.join(format!("{file}.key"));
        let csr = dir.join(format!("{file}.csr"));
        let leaf = dir.join(format!("{file}.leaf.pem"));
        let chain = dir.join(format!("{file}.pem"));
        let newkey: &[&str] = match key {
            Key::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Key::Rsa2048 => &["-newkey", "rsa:2048"],
        };
        let mut args = vec!["req", "-nodes"];
        args.extend_from_slice(newkey);
        let subj = format!("/CN={}", names[0]);
        args.extend_from_slice(&[
            "-keyout",
            key_path.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            &subj,
        ]);
        openssl(dir, &args);
        let san: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        let ext = dir.join(format!("{file}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
                san.join(",")
            ),
        )
        .unwrap();
        let days_s = days.to_string();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-out",
                leaf.to_str().unwrap(),
                "-days",
                &days_s,
                "-extfile",
                ext.to_str().unwrap(),
            ],
        );
        let mut pem = std::fs::read(&leaf).unwrap();
        pem.extend(std::fs::read(&self.cert).unwrap());
        std::fs::write(&chain, pem).unwrap();
        (chain, key_path)
    }
}

/// `openssl s_client` to `port` with `args` (e.g. `-servername x`, `-alpn h2`); returns
/// its output (stdout and stderr). Sends `input` and closes.
pub fn s_client(port: u16, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
