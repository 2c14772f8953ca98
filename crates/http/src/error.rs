//! `HttpError`: why a head or a body was refused, as the status code to answer with and a
//! short human reason for the log (never shown to the peer verbatim unless the caller wants).
//!
//! Every parser in this crate reports failure with this one type. Requests map to 4xx/5xx
//! statuses for the client (400, 414, 417, 431, 501, 505); anything wrong in a response from
//! a backend maps to 502, because a proxy that cannot trust a backend's framing must answer
//! `502 Bad Gateway` and close that backend connection (RFC 9112 §6.3).

use std::fmt;

/// A refused message: the status to answer with, and a short reason such as
/// `"Content-Length with Transfer-Encoding"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// The status code the proxy should answer with (400, 414, 417, 431, 501, 502, 505).
    pub status: u16,
    /// Short human text for logs and status pages.
    pub reason: &'static str,
}

impl HttpError {
    /// A refusal with `status` and `reason`.
    pub const fn new(status: u16, reason: &'static str) -> Self {
        HttpError { status, reason }
    }

    /// `400 Bad Request`.
    pub const fn bad_request(reason: &'static str) -> Self {
        Self::new(400, reason)
    }

    /// `502 Bad Gateway`: the backend sent something we cannot trust.
    pub const fn bad_gateway(reason: &'static str) -> Self {
        Self::new(502, reason)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_status_then_reason() {
        let e = HttpError::bad_request("bare LF in head");
        assert_eq!(e.to_string(), "400 bare LF in head");
        assert_eq!(HttpError::bad_gateway("x"), HttpError::new(502, "x"));
    }
}
