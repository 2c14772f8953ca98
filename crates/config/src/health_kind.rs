//! `kind` and `service` of an `[upstream.health]` table: what an active check asks.
//!
//! ```toml
//! [upstream.health]
//! kind = "grpc"        # http (default): GET `path`, the status decides
//!                      # grpc: grpc.health.v1.Health/Check over h2c, SERVING passes
//! service = "app.Api"  # grpc only: the service asked about ("" = the whole server)
//! ```
//!
//! A gRPC check has no path and no HTTP status to accept, so `path` and `status` beside
//! `kind = "grpc"` are errors (they would be silently ignored otherwise); `service` without
//! `kind = "grpc"` is one too.

use std::ops::Range;

use tether_balance::CheckKind;
use toml::Spanned;

use super::ConfigError;

/// The keys of one `[upstream.health]` table that decide its kind.
pub(super) struct KindKeys<'a> {
    pub kind: Option<&'a Spanned<String>>,
    pub service: Option<&'a Spanned<String>>,
    /// `path` and `status`, if given (their spans).
    pub path: Option<Range<usize>>,
    pub status: Option<Range<usize>>,
}

/// The checked kind (`http` when absent).
pub(super) fn check(
    keys: KindKeys<'_>,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<CheckKind, ConfigError> {
    let grpc = match keys.kind {
        None => false,
        Some(k) => match k.get_ref().as_str() {
            "http" => false,
            "grpc" => true,
            other => {
                return Err(at(
                    k.span(),
                    format!(
                        "`health.kind`: {other:?} is not \"http\" or \"grpc\" \
                         (hint: \"grpc\" asks grpc.health.v1.Health/Check over h2c)"
                    ),
                ))
            }
        },
    };
    if !grpc {
        if let Some(s) = keys.service {
            return Err(at(
                s.span(),
                "`health.service` is for gRPC checks only \
                 (hint: add `kind = \"grpc\"`, or drop `service`)"
                    .into(),
            ));
        }
        return Ok(CheckKind::Http);
    }
    for (key, span) in [("path", keys.path), ("status", keys.status)] {
        if let Some(span) = span {
            return Err(at(
                span,
                format!(
                    "`health.{key}` makes no sense with `kind = \"grpc\"`: a gRPC check calls \
                     grpc.health.v1.Health/Check and only SERVING passes \
                     (hint: drop `{key}`; `service = \"name\"` picks the service asked about)"
                ),
            ));
        }
    }
    let service = keys
        .service
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    Ok(CheckKind::Grpc { service })
}

#[cfg(test)]
mod tests {
    use tether_balance::CheckKind;

    fn load(health: &str) -> Result<CheckKind, String> {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\nprotocol = \"h2c\"\n\
             [upstream.health]\n{health}\n\
             [[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        );
        crate::parse(&text, "t.toml")
            .map(|c| c.upstreams[0].options.check.clone().map(|c| c.kind))
            .map_err(|e| e.to_string())
            .and_then(|k| k.ok_or_else(|| "no check".to_string()))
    }

    #[test]
    fn kinds_and_errors() {
        assert_eq!(load("path = \"/h\""), Ok(CheckKind::Http));
        assert_eq!(load("kind = \"http\""), Ok(CheckKind::Http));
        assert_eq!(
            load("kind = \"grpc\""),
            Ok(CheckKind::Grpc {
                service: String::new()
            })
        );
        assert_eq!(
            load("kind = \"grpc\"\nservice = \"app.Api\"\ninterval_ms = 100"),
            Ok(CheckKind::Grpc {
                service: "app.Api".into()
            })
        );
        let e = load("kind = \"grpcc\"").unwrap_err();
        assert!(e.starts_with("t.toml:6:8: `health.kind`: \"grpcc\""), "{e}");
        assert!(e.contains("hint"), "{e}");
        let e = load("kind = \"grpc\"\npath = \"/health\"").unwrap_err();
        assert!(
            e.starts_with("t.toml:7:8: `health.path` makes no sense"),
            "{e}"
        );
        assert!(e.contains("hint: drop `path`"), "{e}");
        let e = load("kind = \"grpc\"\nstatus = [200, 299]").unwrap_err();
        assert!(
            e.starts_with("t.toml:7:10: `health.status` makes no sense"),
            "{e}"
        );
        let e = load("service = \"x\"").unwrap_err();
        assert!(
            e.starts_with("t.toml:6:11: `health.service` is for gRPC"),
            "{e}"
        );
    }
}
