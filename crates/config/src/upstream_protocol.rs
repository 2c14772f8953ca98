//! `protocol` of an `[[upstream]]`: what the servers speak, checked against the pool's TLS.
//!
//! ```toml
//! [[upstream]]
//! name = "grpc"
//! servers = ["127.0.0.1:50051"]
//! protocol = "h2c"   # http1 (default) | h2c | h2 (TLS, ALPN h2) | auto (TLS, ALPN decides)
//! ```

use std::ops::Range;

use toml::Spanned;

use super::ConfigError;
use crate::spec::UpstreamProtocol;

/// The checked `protocol` (`http1` when absent). `tls`: the pool speaks TLS (`tls` or
/// `https://` servers).
pub(super) fn check(
    raw: Option<&Spanned<String>>,
    tls: bool,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<UpstreamProtocol, ConfigError> {
    let Some(raw) = raw else {
        return Ok(UpstreamProtocol::Http1);
    };
    let text = raw.get_ref();
    let Some(p) = UpstreamProtocol::parse(text) else {
        return Err(at(
            raw.span(),
            format!(
                "`protocol`: {text:?} is not \"http1\", \"h2c\", \"h2\" or \"auto\" \
                 (hint: \"h2c\" is HTTP/2 without TLS, what a gRPC server on a plain port speaks)"
            ),
        ));
    };
    match p {
        UpstreamProtocol::H2c if tls => Err(at(
            raw.span(),
            "`protocol = \"h2c\"` is HTTP/2 without TLS, but this pool speaks TLS \
             (hint: use \"h2\", or drop `tls` and the https:// prefixes)"
                .into(),
        )),
        UpstreamProtocol::H2 | UpstreamProtocol::Auto if !tls => Err(at(
            raw.span(),
            format!(
                "`protocol = {text:?}` negotiates HTTP/2 by ALPN, which needs TLS \
                 (hint: add `tls = true`, or use \"h2c\" for HTTP/2 on a plain port)"
            ),
        )),
        _ => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::UpstreamProtocol;

    fn load(extra: &str) -> Result<UpstreamProtocol, String> {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        );
        crate::parse(&text, "t.toml")
            .map(|c| c.upstreams[0].protocol)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn protocol_values_and_errors() {
        assert_eq!(load(""), Ok(UpstreamProtocol::Http1));
        assert_eq!(load("protocol = \"http1\""), Ok(UpstreamProtocol::Http1));
        assert_eq!(load("protocol = \"h2c\""), Ok(UpstreamProtocol::H2c));
        assert_eq!(
            load("protocol = \"h2\"\ntls = { verify = false }"),
            Ok(UpstreamProtocol::H2)
        );
        let e = load("protocol = \"http2\"").unwrap_err();
        assert!(e.starts_with("t.toml:4:12: `protocol`: \"http2\""), "{e}");
        assert!(e.contains("hint"), "{e}");
        let e = load("protocol = \"h2\"").unwrap_err();
        assert!(
            e.starts_with("t.toml:4:12:") && e.contains("needs TLS"),
            "{e}"
        );
        let e = load("protocol = \"h2c\"\ntls = true").unwrap_err();
        assert!(
            e.starts_with("t.toml:4:12:") && e.contains("speaks TLS"),
            "{e}"
        );
    }
}
