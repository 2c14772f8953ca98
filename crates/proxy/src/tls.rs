//! TLS settings turned into rustls configs: certificates read from PEM files and checked
//! (the key matches the certificate, the chain parses, the names and expiry read), the SNI
//! choice among a listener's certificates (exact names, then wildcards, then the default),
//! session resumption (tickets with rotating keys and a session cache, shared by every
//! worker thread of the process), client-certificate verification, and the client configs
//! upstream connections use. The record layer itself is the core's (`tether_core::tls`).
//!
//! The crypto provider is rustls' `ring`: it builds with a C compiler alone (aws-lc-rs needs
//! cmake and takes minutes more on a two-core CI machine) and is fast for ECDSA P-256,
//! AES-GCM and ChaCha20, the common case of a front door.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::TlsSpec;
use tether_core::tls::rustls;
use tether_core::tls::TlsClient;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The process' crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// The certificates of one listener and how a ClientHello picks one.
#[derive(Debug)]
pub struct CertStore {
    certs: Vec<LoadedCert>,
    /// With no name matching, fail the handshake rather than use the default.
    strict_sni: bool,
}

impl CertStore {
    pub fn new(certs: Vec<LoadedCert>, strict_sni: bool) -> CertStore {
        CertStore { certs, strict_sni }
    }

    /// The loaded certificates (for expiry warnings, status pages).
    pub fn certs(&self) -> &[LoadedCert] {
        &self.certs
    }

    /// The certificate of exactly this name (lowercased), if one is loaded.
    pub fn resolve_exact(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let c = self
            .certs
            .iter()
            .find(|c| c.names.iter().any(|n| n == name));
        c.map(|c| c.key.clone())
    }

    /// `pick`, for resolvers that wrap this store (ACME listeners).
    pub fn resolve_name(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.pick(sni)
    }

    pub fn strict_sni(&self) -> bool {
        self.strict_sni
    }

    /// Pick by name: an exact name, else a wildcard one label deep, else (not strict) the
    /// first certificate, which is the default.
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = &self.certs;
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = certs.iter().find(|c| c.names.contains(&name)) {
                return Some(c.key.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                let wild = format!("*.{parent}");
                if let Some(c) = certs.iter().find(|c| c.names.contains(&wild)) {
                    return Some(c.key.clone());
                }
            }
            if self.strict_sni {
                log::info!("TLS: no certificate for SNI {name:?} (strict_sni)");
                return None;
            }
        }
        certs.first().map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// A listener's TLS as the core runs it (built from the config's `TlsSpec`).
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub store: Arc<CertStore>,
    /// The names whose certificates ACME provides (`acme/`); empty: none.
    pub acme_names: Vec<String>,
}

/// TLS 1.3 and 1.2 (the default), or 1.3 alone (`min_version = "1.3"`).
static TLS_1_2_UP: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];
static TLS_1_3: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// The TLS versions of a listener (`tls12`: 1.2 as well as 1.3).
fn versions(tls12: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if tls12 {
        &TLS_1_2_UP
    } else {
        &TLS_1_3
    }
}

/// The verifier of client certificates signed by the CAs of `path`.
fn client_verifier(
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

/// Build a listener's rustls server config from its checked options `o`, with its
/// certificates read (`certs`, in `o.certs`' order) and, when it has ACME names, the ACME
/// state that provides them.
pub fn server_config(
    o: &TlsSpec,
    certs: Vec<LoadedCert>,
    acme: Option<Arc<crate::acme::Acme>>,
) -> Result<ListenerTls, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(o.tls12))
        .map_err(|e| e.to_string())?;
    let builder = match &o.client_ca {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path)?),
        None => builder.with_no_client_auth(),
    };
    let store = Arc::new(CertStore::new(certs, o.strict_sni));
    let mut alpn: Vec<Vec<u8>> = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let (mut config, acme_names) = match acme.filter(|_| !o.acme_names.is_empty()) {
        Some(acme) => {
            let names = o.acme_names.clone();
            // TLS-ALPN-01: only clients that speak ALPN at all, so a listener without
            // `alpn` keeps accepting clients that offer protocols it does not know.
            if !alpn.is_empty() {
                alpn.push(crate::acme::ACME_TLS_ALPN.to_vec());
            }
            let resolver = crate::acme::AcmeResolver::new(acme, names.clone(), store.clone());
            (builder.with_cert_resolver(Arc::new(resolver)), names)
        }
        None => (builder.with_cert_resolver(store.clone()), Vec::new()),
    };
    config.alpn_protocols = alpn;
    config.session_storage = if o.session_cache > 0 {
        rustls::server::ServerSessionMemoryCache::new(o.session_cache)
    } else {
        Arc::new(rustls::server::NoServerSessionStorage {})
    };
    if o.session_tickets {
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    }
    config.ignore_client_order = true;
    Ok(ListenerTls {
        config: Arc::new(config),
        store,
        acme_names,
    })
}

/// The CA certificates of a PEM file as a root store.
fn roots_from(path: &Path) -> Result<rustls::RootCertStore, String> {
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

/// Build an upstream's client config.
pub fn client_config(o: &UpstreamTlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if !o.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        let roots = match &o.ca {
            Some(path) => roots_from(path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match &o.client_cert {
        Some((cert, key)) => {
            let loaded = load_cert(cert, key)?;
            builder
                .with_client_auth_cert(loaded.key.cert.clone(), {
                    PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| format!("key {}: {e}", key.display()))?
                })
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's trusted roots (`/etc/ssl/certs` and the like).
fn system_roots() -> Result<rustls::RootCertStore, String> {
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

/// The TLS client of one upstream server: `sni`, else the host of its address.
pub fn client_for(
    config: &Arc<rustls::ClientConfig>,
    sni: Option<&str>,
    addr_text: &str,
) -> Result<TlsClient, String> {
    let host = sni
        .map(str::to_string)
        .unwrap_or_else(|| host_of(addr_text));
    let name =
        ServerName::try_from(host.clone()).map_err(|_| format!("{host:?} is not a server name"))?;
    Ok(TlsClient {
        config: config.clone(),
        name,
    })
}

/// `host` of `host:port`, `[v6]:port` or `https://host:port`.
fn host_of(addr: &str) -> String {
    let a = addr.strip_prefix("https://").unwrap_or(addr);
    let a = a.split('/').next().unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h).to_string()
}

/// `verify = false`: any server certificate is taken (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Certificates expiring within this many days are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Every certificate the listeners of `runtime` serve, once each (by path).
pub fn certificates(runtime: &crate::runtime::Runtime) -> Vec<LoadedCert> {
    let mut seen: HashMap<PathBuf, LoadedCert> = HashMap::new();
    for l in runtime.listeners() {
        if let Some(t) = &l.tls {
            for c in t.store.certs() {
                seen.entry(c.cert_path.clone()).or_insert_with(|| c.clone());
            }
        }
    }
    let mut all: Vec<LoadedCert> = seen.into_values().collect();
    all.sort_by(|a, b| a.cert_path.cmp(&b.cert_path));
    all
}

/// What to warn about at start (and, for expiry, daily): certificates expiring within
/// [`EXPIRY_WARNING_DAYS`], upstreams whose certificates are not verified.
pub fn warnings(runtime: &crate::runtime::Runtime) -> Vec<String> {
    let now = SystemTime::now();
    let mut out: Vec<String> = certificates(runtime)
        .iter()
        .filter(|c| c.days_left(now) < EXPIRY_WARNING_DAYS)
        .map(|c| {
            format!(
                "certificate {} ({}) expires in {} day(s)",
                c.cert_path.display(),
                c.names.join(", "),
                c.days_left(now)
            )
        })
        .collect();
    let mut seen = Vec::new();
    for up in runtime.pools() {
        if up.tls_unverified && !seen.contains(&up.name()) {
            seen.push(up.name());
            out.push(format!(
                "upstream {:?}: TLS certificates are not verified (verify = false)",
                up.name()
            ));
        }
    }
    out
}
