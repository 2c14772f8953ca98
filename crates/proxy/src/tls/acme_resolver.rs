//! The certificate resolver of a listener with ACME names: a TLS-ALPN-01 validation
//! (ALPN `acme-tls/1` only) gets the challenge certificate of the name it asks for; any
//! other client gets the ACME certificate of its SNI name, else the listener's static
//! certificates (`CertStore`), else — without SNI — the first ACME name's certificate.
//!
//! A name whose certificate is not there yet (first start, order under way) gets no
//! certificate: rustls ends the handshake with a fatal alert at once, so the client sees
//! a clear TLS error instead of a hang.

use std::sync::Arc;

use tether_core::tls::rustls;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::CertStore;
use tether_acme::Acme;

/// ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug)]
pub struct AcmeResolver {
    acme: Arc<Acme>,
    /// The ACME names of this listener, lowercased (the first is the default).
    names: Vec<String>,
    /// Static certificates configured next to the ACME names, if any.
    fallback: Arc<CertStore>,
}

impl AcmeResolver {
    pub fn new(acme: Arc<Acme>, names: Vec<String>, fallback: Arc<CertStore>) -> AcmeResolver {
        AcmeResolver {
            acme,
            names,
            fallback,
        }
    }

    fn pick(&self, sni: Option<&str>, alpn_challenge: bool) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else {
            let first = self.names.first().and_then(|n| self.acme.cert(n));
            return first.or_else(|| self.fallback.resolve_name(None));
        };
        if alpn_challenge {
            let cert = self.acme.alpn_cert(&name);
            if cert.is_none() {
                log::info!("acme: TLS-ALPN-01 validation for {name:?}: no challenge under way");
            }
            return cert;
        }
        if self.names.contains(&name) {
            if let Some(c) = self.acme.cert(&name) {
                return Some(c);
            }
            if let Some(c) = self.fallback.resolve_exact(&name) {
                return Some(c);
            }
            log::info!("TLS: no certificate for {name:?} yet (ACME order pending)");
            return None;
        }
        let other = self.fallback.resolve_name(Some(&name));
        if other.is_some() || self.fallback.strict_sni() {
            return other;
        }
        self.names.first().and_then(|n| self.acme.cert(n))
    }
}

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let alpn_challenge = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.all(|p| p == ACME_TLS_ALPN));
        self.pick(hello.server_name(), alpn_challenge)
    }
}
