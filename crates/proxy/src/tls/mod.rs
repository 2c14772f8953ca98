//! TLS settings turned into rustls configs: the SNI choice among a listener's certificates
//! (exact names, then wildcards, then the default), session resumption (tickets with
//! rotating keys and a session cache, shared by every worker thread of the process),
//! client-certificate verification, and the client configs upstream connections use. The
//! certificates themselves are read and checked by `tether_config::certs` (the same code
//! `tether check` runs); the record layer is the core's (`tether_core::tls`).
//!
//! The crypto provider is rustls' `ring`: it builds with a C compiler alone (aws-lc-rs needs
//! cmake and takes minutes more on a two-core CI machine) and is fast for ECDSA P-256,
//! AES-GCM and ChaCha20, the common case of a front door.
//!
//! `acme_resolver.rs`: the resolver of a listener whose certificates `tether-acme` provides
//! (it wraps this module's `CertStore`; one concept with it).

mod acme_resolver;

pub use acme_resolver::{AcmeResolver, ACME_TLS_ALPN};

use std::sync::Arc;

use tether_config::certs::{
    client_verifier, host_of, load_cert, provider, roots_from, system_roots, versions, LoadedCert,
    UpstreamTlsOptions,
};
use tether_config::TlsSpec;
use tether_core::tls::rustls;
use tether_core::tls::TlsClient;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Build a listener's rustls server config from its checked options `o`, with its
/// certificates read (`certs`, in `o.certs`' order) and, when it has ACME names, the ACME
/// state that provides them.
pub fn server_config(
    o: &TlsSpec,
    certs: Vec<LoadedCert>,
    acme: Option<Arc<tether_acme::Acme>>,
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
                alpn.push(acme_resolver::ACME_TLS_ALPN.to_vec());
            }
            let resolver = acme_resolver::AcmeResolver::new(acme, names.clone(), store.clone());
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
