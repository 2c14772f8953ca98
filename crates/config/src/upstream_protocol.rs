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
use crate::spec::{H2Keep, UpstreamProtocol};

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

/// `h2_idle_timeout_ms`, `h2_ping_interval_ms` (`0`: no PINGs) and `h2_ping_timeout_ms`
/// (defaults: 60 s, 30 s, 10 s).
pub(super) fn keep(
    [idle, ping, timeout]: [Option<Spanned<u64>>; 3],
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<H2Keep, ConfigError> {
    let d = H2Keep::default();
    let ms = std::time::Duration::from_millis;
    let above_0 = |v: Option<Spanned<u64>>, default: std::time::Duration, key: &str| match v {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(at(
            v.span(),
            format!(
                "`{key}` must be above 0 (hint: leave it out for {} ms)",
                default.as_millis()
            ),
        )),
        Some(v) => Ok(ms(*v.get_ref())),
    };
    let idle = above_0(idle, d.idle, "h2_idle_timeout_ms")?;
    let ping_timeout = above_0(timeout, d.ping_timeout, "h2_ping_timeout_ms")?;
    let ping_every = match ping {
        None => d.ping_every,
        Some(v) if *v.get_ref() == 0 => None,
        Some(v) => Some(ms(*v.get_ref())),
    };
    Ok(H2Keep {
        idle,
        ping_every,
        ping_timeout,
    })
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
    fn h2_keep_defaults_values_and_errors() {
        let keep = |extra: &str| {
            let text = format!(
                "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n{extra}\n\
                 [[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\n\
                 proxy = \"app\"\n"
            );
            crate::parse(&text, "t.toml")
                .map(|c| c.upstreams[0].h2)
                .map_err(|e| e.to_string())
        };
        let ms = std::time::Duration::from_millis;
        assert_eq!(keep(""), Ok(crate::spec::H2Keep::default()));
        let k = keep("h2_idle_timeout_ms = 500\nh2_ping_interval_ms = 0\nh2_ping_timeout_ms = 70");
        assert_eq!(
            k,
            Ok(crate::spec::H2Keep {
                idle: ms(500),
                ping_every: None,
                ping_timeout: ms(70)
            })
        );
        let k = keep("h2_ping_interval_ms = 250").map(|k| k.ping_every);
        assert_eq!(k, Ok(Some(ms(250))));
        let e = keep("h2_idle_timeout_ms = 0").unwrap_err();
        assert!(
            e.starts_with("t.toml:4:22: `h2_idle_timeout_ms` must be above 0"),
            "{e}"
        );
        assert!(e.contains("hint: leave it out for 60000 ms"), "{e}");
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
