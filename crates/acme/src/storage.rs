//! The storage directory: what survives a restart and what several instances share.
//!
//! ```text
//! <storage>/<directory-host-and-path>/     one folder per CA directory (staging ≠ production)
//!   account.json                           the account's credentials (0600)
//!   certs/<name>/cert.pem, key.pem         the certificate chain and its key (0600)
//!   http-01/<token>                        key authorizations being validated
//!   locks/<name>.lock, locks/account.lock  leases: "<pid> <expiry, Unix seconds>"
//! ```
//!
//! Files are written to a temporary name and renamed, so a reader (another instance) sees
//! the old file or the new one, never half of one. A lease is a lock file created with
//! `O_EXCL`; it expires, so an instance that died holding one blocks the others only until
//! then.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tether_config::acme::AcmeSettings;
use tether_config::certs::{load_cert, LoadedCert};

/// The storage folder of one CA directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(settings: &AcmeSettings) -> Store {
        Store {
            root: settings.storage.join(slug(&settings.directory)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn account_path(&self) -> PathBuf {
        self.root.join("account.json")
    }

    fn cert_dir(&self, name: &str) -> PathBuf {
        self.root.join("certs").join(name)
    }

    /// The stored certificate of `name`, if there is one that loads.
    pub fn load_cert(&self, name: &str) -> Option<LoadedCert> {
        let dir = self.cert_dir(name);
        let cert = dir.join("cert.pem");
        if !cert.exists() {
            return None;
        }
        match load_cert(&cert, &dir.join("key.pem")) {
            Ok(c) => Some(c),
            Err(e) => {
                log::warn!("acme: stored certificate of {name} does not load: {e}");
                None
            }
        }
    }

    /// Store a certificate chain and its key (the key first: a reader that sees the new
    /// chain finds its key).
    pub fn save_cert(&self, name: &str, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let dir = self.cert_dir(name);
        fs::create_dir_all(&dir)?;
        // A reader between the two renames finds a key that does not match the old chain:
        // it refuses the pair and looks again later.
        write_atomic(&dir.join("key.pem.new"), key_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join("cert.pem.new"), chain_pem.as_bytes(), 0o644)?;
        fs::rename(dir.join("key.pem.new"), dir.join("key.pem"))?;
        fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem"))
    }

    /// Publish an HTTP-01 key authorization for every instance sharing the storage.
    pub fn put_token(&self, token: &str, key_auth: &str) -> io::Result<()> {
        let dir = self.root.join("http-01");
        fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(token), key_auth.as_bytes(), 0o644)
    }

    pub fn remove_token(&self, token: &str) {
        let _ = fs::remove_file(self.root.join("http-01").join(token));
    }

    /// The key authorization of `token` (a token is base64url: checked by the caller).
    pub fn token(&self, token: &str) -> Option<String> {
        fs::read_to_string(self.root.join("http-01").join(token)).ok()
    }

    pub fn read_account(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.account_path()) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn write_account(&self, json: &str) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        write_atomic(&self.account_path(), json.as_bytes(), 0o600)
    }

    /// The CA no longer knows the stored account: keep it as `account.json.refused`.
    pub fn forget_account(&self) {
        let path = self.account_path();
        let _ = fs::rename(&path, path.with_extension("json.refused"));
    }

    /// Take the lease `what` (a name, or "account") for `ttl`.
    pub fn lease(&self, what: &str, ttl: Duration) -> io::Result<Lease> {
        let dir = self.root.join("locks");
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{what}.lock"));
        for _ in 0..2 {
            let expiry = SystemTime::now() + ttl;
            let text = format!("{} {}\n", std::process::id(), unix(expiry));
            let created = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path);
            match created {
                Ok(mut f) => {
                    f.write_all(text.as_bytes())?;
                    return Ok(Lease::Held(LeaseGuard { path }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let until = lease_expiry(&path);
                    if until.is_some_and(|u| u > SystemTime::now()) {
                        return Ok(Lease::Busy {
                            until: until.unwrap_or_else(SystemTime::now),
                        });
                    }
                    log::info!("acme: lease {} expired; taking it over", path.display());
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Lease::Busy {
            until: SystemTime::now() + Duration::from_secs(1),
        })
    }
}

/// The outcome of asking for a lease.
pub(crate) enum Lease {
    /// Ours until the guard is dropped.
    Held(LeaseGuard),
    /// Another instance holds it until then (at the latest).
    Busy { until: SystemTime },
}

/// Removes the lock file when dropped.
pub(crate) struct LeaseGuard {
    path: PathBuf,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The expiry written in a lock file; a file being written (empty) counts as fresh.
fn lease_expiry(path: &Path) -> Option<SystemTime> {
    let text = fs::read_to_string(path).ok()?;
    match text.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
        Some(secs) => Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        None => {
            let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(modified + Duration::from_secs(10))
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Write `bytes` to a temporary file next to `path`, then rename it over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// A folder name for a directory URL: its host, port and path, with `/` and `:` replaced.
pub(crate) fn slug(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_cas_apart() {
        assert_eq!(
            slug(tether_config::acme::LETS_ENCRYPT),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(slug("https://127.0.0.1:14000/dir"), "127.0.0.1_14000_dir");
    }

    #[test]
    fn a_lease_is_exclusive_until_released_or_expired() {
        let dir = std::env::temp_dir().join(format!("tether-lease-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store { root: dir.clone() };
        let held = store
            .lease("a.example", Duration::from_secs(60))
            .expect("lease");
        assert!(matches!(held, Lease::Held(_)));
        let busy = store
            .lease("a.example", Duration::from_secs(60))
            .expect("lease");
        assert!(matches!(busy, Lease::Busy { .. }));
        drop(held);
        let again = store
            .lease("a.example", Duration::from_secs(0))
            .expect("lease");
        assert!(matches!(again, Lease::Held(_)));
        // Written with a zero ttl: expired at once, so another instance takes it over.
        std::mem::forget(again);
        let taken = store
            .lease("a.example", Duration::from_secs(60))
            .expect("lease");
        assert!(matches!(taken, Lease::Held(_)));
        drop(taken);
        let _ = fs::remove_dir_all(&dir);
    }
}
