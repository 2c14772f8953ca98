//! Certificates and TLS options as the config checks them, without building a server or
//! client config: certificate chains and keys read from PEM files (the key must match the
//! certificate, the chain must parse; names and expiry read), the TLS versions and client
//! CA of a listener, an upstream's TLS options (CA file or the system's roots, client
//! certificate, the name sent). The crypto provider is rustls' `aws-lc-rs` (its RSA signs in
//! ~60 % of ring's time; docs/benchmarks.md). Building `ServerConfig`/`ClientConfig` from
//! these is `tether-proxy`'s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

/// The process' crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// One certificate of a listener, as loaded.
#[derive(Clone)]
pub struct LoadedCert {
    pub cert_path: PathBuf,
    pub key: Arc<CertifiedKey>,
    /// DNS names (subject alternative names, else the common name), lowercased.
    pub names: Vec<String>,
    pub not_after: SystemTime,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.cert_path.display(), self.names)
    }
}

impl LoadedCert {
    /// Days until it expires (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
        }
    }
}

/// Read a certificate chain and its key, and check that they belong together.
pub fn load_cert(cert: &Path, key: &Path) -> Result<LoadedCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificate {}: no CERTIFICATE block in it",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("key {}: no private key read: {e}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("key {}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "key {} does not match certificate {}",
                key.display(),
                cert.display()
            ))
        }
        Err(e) => return Err(format!("certificate {}: {e}", cert.display())),
    }
    let (names, not_after) =
        describe(&certified.cert[0]).map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    for extra in &certified.cert[1..] {
        describe(extra).map_err(|e| format!("certificate {} (chain): {e}", cert.display()))?;
    }
    Ok(LoadedCert {
        cert_path: cert.to_path_buf(),
        key: Arc::new(certified),
        names,
        not_after,
    })
}

/// The DNS names and expiry of a certificate.
fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime), String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    let secs = cert.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    Ok((names, not_after))
}

/// TLS 1.3 and 1.2 (the default), or 1.3 alone (`min_version = "1.3"`).
static TLS_1_2_UP: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];
static TLS_1_3: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// The TLS versions of a listener (`tls12`: 1.2 as well as 1.3).
pub fn versions(tls12: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if tls12 {
        &TLS_1_2_UP
    } else {
        &TLS_1_3
    }
}

/// The verifier of client certificates signed by the CAs of `path`.
pub fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let roots = roots_from(path)?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("client_ca {}: {e}", path.display()))
}

/// What `server_config` would refuse in a listener's options, found without making the
/// config (no session cache, no ticket keys): the TLS versions and the client CA file.
pub fn check_server(tls12: bool, client_ca: Option<&Path>) -> Result<(), String> {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls12))
        .map_err(|e| e.to_string())?;
    client_ca.map(client_verifier).transpose().map(|_| ())
}

/// The CA certificates of a PEM file as a root store.
pub fn roots_from(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CA certificate in it", path.display()));
    }
    Ok(roots)
}

/// How an upstream speaks TLS (from the config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsOptions {
    /// Verify against these CAs instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The name sent (SNI) and verified; default: each server's host name.
    pub sni: Option<String>,
    /// `false` only when written: accept any certificate.
    pub verify: bool,
    /// A client certificate and key to present.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// What `client_config` would refuse, found without making the config: the CA file (or
/// the system's roots) and the client certificate with its key.
pub fn check_client(o: &UpstreamTlsOptions) -> Result<(), String> {
    if o.verify {
        match &o.ca {
            Some(path) => roots_from(path)?,
            None => system_roots()?,
        };
    }
    if let Some((cert, key)) = &o.client_cert {
        load_cert(cert, key)?;
    }
    Ok(())
}

/// What `client_for` would refuse: the name sent (`sni`, else the host of `addr_text`).
pub fn check_client_name(sni: Option<&str>, addr_text: &str) -> Result<(), String> {
    let host = sni
        .map(str::to_string)
        .unwrap_or_else(|| host_of(addr_text));
    ServerName::try_from(host.clone())
        .map(|_| ())
        .map_err(|_| format!("{host:?} is not a server name"))
}

/// The system's trusted roots (`/etc/ssl/certs` and the like).
pub fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no system root certificates found ({}); give `ca = \"file.pem\"`",
            found
                .errors
                .first()
                .map_or("none installed".to_string(), |e| e.to_string())
        ));
    }
    Ok(roots)
}

/// `host` of `host:port`, `[v6]:port` or `https://host:port`.
pub fn host_of(addr: &str) -> String {
    let a = addr.strip_prefix("https://").unwrap_or(addr);
    let a = a.split('/').next().unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h).to_string()
}
