//! tether-acme: automatic certificates (ACME, RFC 8555): what the listeners and the helper thread share.
//!
//! The `[acme]` table and its binding to the listeners that say `certificates = "acme"` /
//! `acme_domains = [...]` are `tether_config::acme`'s; the rustls resolver of an ACME
//! listener (the certificate of the name asked for, or the TLS-ALPN-01 challenge
//! certificate) is `tether_proxy::acme_resolver`'s, which reads [`Acme::cert`] and
//! [`Acme::alpn_cert`]. This crate hands certificates over through [`Acme`]; whoever
//! installs them (the listeners' TLS) reads them from there.
//!
//! - `storage.rs`: the storage directory (account, certificates, HTTP-01 key
//!   authorizations, leases) shared by every instance pointing at it;
//! - `challenge.rs`: the HTTP-01 answer of a plain listener and the TLS-ALPN-01 certificate;
//! - `order.rs`: one order with instant-acme (account, authorise, finalise, download);
//! - `manager.rs`: the helper thread that decides when to order, renew and retry.
//!
//! [`Acme`] is the state the event loops read: certificates by name behind a `RwLock`
//! (read per handshake, written only when a certificate is swapped in), the challenge
//! answers behind short `Mutex`es. The loops never wait on the ACME server: the helper
//! thread does all the network work and only replaces entries here. A handshake that is
//! under way keeps the certificate it picked, so swapping one in drops no connection.

mod challenge;
mod manager;
mod order;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use serde_json::{json, Value};

pub use challenge::http01_answer;
pub use manager::start;
pub use tether_config::acme::{AcmeSettings, AcmeSpec, Challenge};

/// What `/admin/status` and `/metrics` show of one name.
#[derive(Debug, Clone, Default)]
pub struct NameStatus {
    /// When the certificate served now expires (none: no certificate yet).
    pub not_after: Option<SystemTime>,
    /// The last ACME error for this name, cleared by a success.
    pub last_error: Option<String>,
    /// When the helper thread looks at this name next.
    pub next_check: Option<SystemTime>,
}

/// The ACME state of one config: its settings, the names it manages, and what the loops
/// read (certificates, challenge answers).
pub struct Acme {
    pub settings: AcmeSettings,
    /// Decided once every listener is read (`config::bind`), set by `build`.
    challenge: OnceLock<Challenge>,
    certs: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 challenge certificates, by name.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 key authorizations, by token (this instance's orders).
    tokens: Mutex<HashMap<String, String>>,
    status: Mutex<BTreeMap<String, NameStatus>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Acme({:?}, {:?})", self.settings.directory, self.names())
    }
}

impl Acme {
    pub fn new(settings: AcmeSettings) -> Acme {
        Acme {
            settings,
            challenge: OnceLock::new(),
            certs: RwLock::new(HashMap::new()),
            alpn: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            status: Mutex::new(BTreeMap::new()),
        }
    }

    /// The state of a checked `[acme]`: its challenge set, its names registered (each one's
    /// stored certificate, if any and not expired, is served from now on).
    pub fn build(spec: &AcmeSpec) -> Arc<Acme> {
        let acme = Acme::new(spec.settings.clone());
        acme.set_challenge(spec.challenge);
        for n in &spec.names {
            acme.register(n);
        }
        Arc::new(acme)
    }

    /// The challenge this config answers.
    pub fn challenge(&self) -> Challenge {
        self.challenge
            .get()
            .copied()
            .unwrap_or(Challenge::TlsAlpn01)
    }

    fn set_challenge(&self, c: Challenge) {
        let _ = self.challenge.set(c);
    }

    /// Manage `name`: its stored certificate, if any and not expired, is served from now on.
    pub fn register(&self, name: &str) {
        let name = name.to_ascii_lowercase();
        let Ok(mut status) = self.status.lock() else {
            return;
        };
        if status.contains_key(&name) {
            return;
        }
        let mut entry = NameStatus::default();
        if let Some(stored) = storage::Store::new(&self.settings).load_cert(&name) {
            if stored.not_after > SystemTime::now() {
                entry.not_after = Some(stored.not_after);
                if let Ok(mut c) = self.certs.write() {
                    c.insert(name.clone(), stored.key);
                }
            }
        }
        status.insert(name, entry);
    }

    /// Every managed name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.status
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The certificate served for `name` now.
    pub fn cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.certs.read().ok()?.get(name).cloned()
    }

    /// Serve `key` for `name` from the next handshake on.
    fn install(&self, name: &str, key: Arc<CertifiedKey>, not_after: SystemTime) {
        if let Ok(mut c) = self.certs.write() {
            c.insert(name.to_string(), key);
        }
        self.update(name, |s| {
            s.not_after = Some(not_after);
            s.last_error = None;
        });
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut NameStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(s.entry(name.to_string()).or_default());
        }
    }

    /// A snapshot of every name's status.
    pub fn status(&self) -> BTreeMap<String, NameStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The `"acme"` of `/admin/status`.
    pub fn status_json(&self) -> Value {
        let unix = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let names: serde_json::Map<String, Value> = self
            .status()
            .into_iter()
            .map(|(name, s)| {
                let v = json!({
                    "not_after": s.not_after.map(httpdate::fmt_http_date),
                    "not_after_unix": s.not_after.map(unix),
                    "last_error": s.last_error,
                    "next_check": s.next_check.map(httpdate::fmt_http_date),
                });
                (name, v)
            })
            .collect();
        json!({
            "directory": self.settings.directory,
            "challenge": self.challenge().as_str(),
            "names": names,
        })
    }

    /// The ACME lines of `/metrics`: each name's expiry (0: no certificate yet) and whether
    /// its last attempt failed.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let status = self.status();
        let mut out = String::from(
            "# HELP tether_acme_certificate_expiry_seconds When the ACME certificate of a name expires (Unix time; 0: none yet).\n\
             # TYPE tether_acme_certificate_expiry_seconds gauge\n",
        );
        for (name, s) in &status {
            let at = s.not_after.map_or(0, |t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            let _ = writeln!(
                out,
                "tether_acme_certificate_expiry_seconds{{name=\"{}\"}} {at}",
                name.escape_default()
            );
        }
        out.push_str(
            "# HELP tether_acme_last_attempt_failed 1 when the last ACME attempt for a name failed (see /admin/status for the error).\n\
             # TYPE tether_acme_last_attempt_failed gauge\n",
        );
        for (name, s) in &status {
            let _ = writeln!(
                out,
                "tether_acme_last_attempt_failed{{name=\"{}\"}} {}",
                name.escape_default(),
                u8::from(s.last_error.is_some())
            );
        }
        out
    }
}

/// The ACME state the helper thread of this process runs (for `/admin/status`, `/metrics`).
static RUNNING: Mutex<Option<Arc<Acme>>> = Mutex::new(None);

/// The running ACME state of this process, if any.
pub fn running() -> Option<Arc<Acme>> {
    RUNNING.lock().ok()?.clone()
}
