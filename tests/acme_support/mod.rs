//! pebble (Let's Encrypt's test CA, Debian's `pebble` package) for the ACME tests: its
//! HTTPS certificate made at test time (`tls_support::Ca`), its validation ports pointed at
//! tether's test ports, its DNS answered by `pebble-challtestsrv` (every name is
//! 127.0.0.1), real validation (`PEBBLE_VA_ALWAYS_VALID=0`), no random sleeps, no nonce
//! rejection, no authorization reuse. Everything on loopback; killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{eventually, free_port, wait_port, Proc};
use crate::tls_support::{Ca, Key};

pub struct Pebble {
    dir: PathBuf,
    pub port: u16,
    pub mgmt: u16,
    /// The CA of pebble's own HTTPS certificate (tether's `[acme] ca`).
    pub tls_ca: PathBuf,
    config: PathBuf,
    dns: u16,
    proc: Option<Proc>,
    _challtestsrv: Proc,
    /// Log files of each run, in order.
    pub logs: Vec<PathBuf>,
}

pub struct Options {
    pub http_port: u16,
    pub tls_port: u16,
    /// Certificate lifetime in seconds (pebble's default: 5 years).
    pub validity: Option<u64>,
    pub eab_required: bool,
}

impl Pebble {
    pub fn start(dir: &Path, o: Options) -> Pebble {
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).expect("pebble dir");
        let ca = Ca::new(&dir, "pebble-ca");
        let (cert, key) = ca.leaf("pebble-https", &["localhost", "127.0.0.1"], Key::P256, 30);
        let (port, mgmt, dns) = (free_port(), free_port(), free_port());
        let validity = o.validity.map_or(String::new(), |v| {
            format!(",\"certificateValidityPeriod\":{v}")
        });
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                "{{\"pebble\":{{\"listenAddress\":\"127.0.0.1:{port}\",\
                 \"managementListenAddress\":\"127.0.0.1:{mgmt}\",\
                 \"certificate\":\"{}\",\"privateKey\":\"{}\",\
                 \"httpPort\":{},\"tlsPort\":{},\"ocspResponderURL\":\"\",\
                 \"externalAccountBindingRequired\":{}{validity}}}}}",
                cert.display(),
                key.display(),
                o.http_port,
                o.tls_port,
                o.eab_required
            ),
        )
        .expect("pebble config");
        let log = std::fs::File::create(dir.join("challtestsrv.log")).expect("log");
        let dns_addr = format!("127.0.0.1:{dns}");
        let mgmt_addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01"])
            .arg(&dns_addr)
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
            ])
            .arg(&mgmt_addr)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pebble-challtestsrv (is pebble installed? scripts/setup.sh)");
        let challtestsrv = Proc { child, log: None };
        wait_port(dns);
        let mut p = Pebble {
            dir,
            port,
            mgmt,
            tls_ca: ca.cert.clone(),
            config,
            dns,
            proc: None,
            _challtestsrv: challtestsrv,
            logs: Vec::new(),
        };
        p.resume();
        p
    }

    /// The directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// Stop pebble (the DNS server stays).
    pub fn stop(&mut self) {
        self.proc = None;
        assert!(
            eventually(Duration::from_secs(5), || std::net::TcpStream::connect((
                "127.0.0.1",
                self.port
            ))
            .is_err()),
            "pebble still listening"
        );
    }

    /// Start pebble (again: it forgets its accounts and makes a new root).
    pub fn resume(&mut self) {
        let log_path = self.dir.join(format!("pebble-{}.log", self.logs.len()));
        let log = std::fs::File::create(&log_path).expect("log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{}", self.dns))
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pebble");
        self.proc = Some(Proc { child, log: None });
        self.logs.push(log_path);
        wait_port(self.port);
        wait_port(self.mgmt);
    }

    /// pebble's current issuing root (`/roots/0`), written to a file for `curl --cacert`.
    pub fn root(&self) -> PathBuf {
        let path = self.dir.join(format!("root-{}.pem", self.logs.len()));
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&self.tls_ca)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.mgmt))
            .output()
            .expect("curl");
        assert!(out.status.success(), "roots/0: {out:?}");
        std::fs::write(&path, &out.stdout).expect("root");
        path
    }

    /// Orders pebble received over all its runs.
    pub fn orders(&self) -> usize {
        self.logs
            .iter()
            .map(|l| {
                std::fs::read_to_string(l)
                    .unwrap_or_default()
                    .matches("Added order")
                    .count()
            })
            .sum()
    }
}

/// The `[acme]` table for `pebble` (storage in `storage`), with `extra` lines.
pub fn acme_table(pebble: &Pebble, storage: &Path, extra: &str) -> String {
    format!(
        "[acme]\ndirectory = \"{}\"\nemail = \"ops@example.org\"\nagree_tos = true\n\
         storage = \"{}\"\nca = \"{}\"\nretry_initial_ms = 500\nretry_max_ms = 2000\n{extra}\n",
        pebble.directory(),
        storage.display(),
        pebble.tls_ca.display()
    )
}

/// `curl https://<name>:<port>/` through loopback, verified against `root`:
/// (exit code, body).
pub fn get_verified(name: &str, port: u16, root: &Path) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}/"))
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The serial number of the certificate served for `name` on `port` (openssl).
pub fn serial(name: &str, port: u16) -> Option<String> {
    let s = crate::tls_support::s_client(port, &["-servername", name, "-showcerts"], b"");
    let pem_start = s.find("-----BEGIN CERTIFICATE-----")?;
    let pem_end = s[pem_start..].find("-----END CERTIFICATE-----")? + pem_start + 25;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child
        .stdin
        .take()?
        .write_all(&s.as_bytes()[pem_start..pem_end])
        .ok()?;
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
