//! Answering the CA's challenges.
//!
//! - HTTP-01: a plain http listener answers `GET /.well-known/acme-challenge/<token>` with
//!   the key authorization, before routing and before `redirect_http` (the CA asks over
//!   plain HTTP on port 80). The answer is this instance's (memory) or, when another
//!   instance sharing the storage started the order, the one it wrote to the storage.
//! - TLS-ALPN-01: a self-signed certificate for the name carrying the `acmeIdentifier`
//!   extension (the SHA-256 of the key authorization), served by `resolver.rs` to a
//!   handshake that offers only `acme-tls/1`.

use std::sync::Arc;

use bytes::Bytes;
use tether_http::{Method, RequestHead};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::storage::Store;
use super::Acme;
use tether_config::Front;

/// The path prefix of HTTP-01.
const PREFIX: &str = "/.well-known/acme-challenge/";

/// The response to an HTTP-01 validation request, if `head` is one this listener can
/// answer from the process' running ACME state (`None`: carry on as for any request).
pub fn http01_answer(
    front: &Front,
    head: &RequestHead,
    server: &str,
    keep_alive: bool,
) -> Option<Bytes> {
    if !front.acme {
        return None;
    }
    let token = head.path().strip_prefix(PREFIX)?;
    if !matches!(head.method, Method::Get | Method::Head) || !is_token(token) {
        return None;
    }
    let acme = super::running()?;
    let key_auth = acme.token(token)?;
    log::info!("acme: answered the HTTP-01 validation of token {token}");
    let mut out = tether_http::reply::Head::new(200, server, key_auth.len() + 64);
    out.content("application/octet-stream", key_auth.len());
    let mut out = out.end(keep_alive);
    if head.method != Method::Head {
        out.extend_from_slice(key_auth.as_bytes());
    }
    Some(Bytes::from(out))
}

/// A token is base64url (RFC 8555 §8.3): nothing else reaches the storage folder.
fn is_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Acme {
    /// The key authorization of an HTTP-01 token: this instance's, else the shared one.
    fn token(&self, token: &str) -> Option<String> {
        let mine = self.tokens.lock().ok()?.get(token).cloned();
        mine.or_else(|| Store::new(&self.settings).token(token))
    }

    /// Publish an HTTP-01 key authorization (memory and storage).
    pub(super) fn put_token(&self, token: &str, key_auth: &str) -> std::io::Result<()> {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.to_string(), key_auth.to_string());
        }
        Store::new(&self.settings).put_token(token, key_auth)
    }

    pub(super) fn remove_token(&self, token: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(token);
        }
        Store::new(&self.settings).remove_token(token);
    }

    /// The TLS-ALPN-01 certificate of `name`, while its validation is under way.
    pub fn alpn_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn.lock().ok()?.get(name).cloned()
    }

    pub(super) fn put_alpn(&self, name: &str, key: Arc<CertifiedKey>) {
        if let Ok(mut a) = self.alpn.lock() {
            a.insert(name.to_string(), key);
        }
    }

    pub(super) fn remove_alpn(&self, name: &str) {
        if let Ok(mut a) = self.alpn.lock() {
            a.remove(name);
        }
    }
}

/// The TLS-ALPN-01 certificate of `name` (RFC 8737 §3): self-signed, the name as its only
/// subject alternative name, the critical `acmeIdentifier` extension holding `digest`.
pub(super) fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("challenge certificate for {name}: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("challenge key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("challenge certificate for {name}: {e}"))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = tether_config::certs::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("challenge key: {e}"))?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_are_looked_up() {
        assert!(is_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(!is_token("../account.json"));
        assert!(!is_token(""));
        assert!(!is_token("a/b"));
    }

    #[test]
    fn the_alpn_certificate_names_the_host() {
        use x509_parser::prelude::*;
        let key = alpn_certificate("a.example", &[7u8; 32]).expect("certificate");
        assert_eq!(key.cert.len(), 1);
        let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).expect("x509");
        let san = cert.subject_alternative_name().expect("san").expect("san");
        assert!(matches!(
            san.value.general_names.as_slice(),
            [GeneralName::DNSName("a.example")]
        ));
        let id = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(id.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&id.value[..2], &[0x04, 32]);
        assert_eq!(&id.value[2..], &[7u8; 32]);
    }
}
