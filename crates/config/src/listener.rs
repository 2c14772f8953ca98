//! `[[listener]]`: the simple forms, one address wired to one thing.
//!
//! ```toml
//! [[listener]]
//! listen = "0.0.0.0:8001"
//! protocol = "http"            # or "tcp"
//! upstream = "127.0.0.1:3000"  # proxy / tunnel to this address, or:
//! # root = "public"            # http: serve this directory
//! # file = "public/sample.txt" # tcp: stream this file on connect
//! ```

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tether_balance::{Pool, ServerConfig};
use toml::Spanned;

use super::spec::{ActionSpec, Pos, RouterSpec, UpstreamId, UpstreamSpec};
use super::{resolve, tls, ConfigError, ListenerSpec, Protocol, Target, HEADER_TIMEOUT_MS};
use tether_files::FileOptions;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) listen: Spanned<String>,
    protocol: Protocol,
    upstream: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    tunnel_timeout_ms: Option<Spanned<u64>>,
    tls: Option<Spanned<tls::RawTls>>,
    redirect_http: Option<Spanned<tls::RawRedirect>>,
    hsts: Option<String>,
    proxy_protocol: Option<Spanned<tls::RawProxyProtocol>>,
    /// http: HTTP/2 too (ALPN `h2` over TLS, h2c with prior knowledge without).
    http2: Option<Spanned<bool>>,
    /// tcp: send a PROXY protocol header ("v1" or "v2") to the upstream first.
    send_proxy: Option<Spanned<String>>,
}

/// Check one `[[listener]]`; the pool of an http `upstream` is added to `upstreams`.
pub(super) fn check(
    l: RawListener,
    span: Range<usize>,
    acme: bool,
    upstreams: &mut Vec<UpstreamSpec>,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<ListenerSpec, ConfigError> {
    let listen = l.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
        at(
            l.listen.span(),
            format!("`listen`: not an address:port: {:?}", l.listen.get_ref()),
        )
    })?;
    let part = tls::part(
        &l.tls,
        acme,
        l.proxy_protocol,
        l.redirect_http,
        l.hsts,
        l.protocol == Protocol::Http,
        l.http2,
        span.clone(),
        at,
    )?;
    if l.protocol == Protocol::Tcp && (part.redirect_https.is_some() || part.hsts.is_some()) {
        return Err(at(
            span,
            "`redirect_http` and `hsts` are for http listeners".into(),
        ));
    }
    if let (Protocol::Tcp, Some(h)) = (l.protocol, &l.header_timeout_ms) {
        return Err(at(
            h.span(),
            "`header_timeout_ms` is for http listeners".into(),
        ));
    }
    let front = tls::merge(vec![part], listen, at)?;
    let targets = [l.upstream.is_some(), l.root.is_some(), l.file.is_some()];
    if targets.iter().filter(|&&t| t).count() != 1 {
        return Err(at(
            span,
            "a listener needs exactly one of `upstream`, `root`, `file`".into(),
        ));
    }
    let send_proxy = match (&l.send_proxy, l.protocol, &l.upstream) {
        (Some(v), Protocol::Http, _) | (Some(v), _, None) => {
            return Err(at(
                v.span(),
                "`send_proxy` on a listener is for a tcp `upstream` (an http one: set it on \
                 an [[upstream]])"
                    .into(),
            ))
        }
        _ => super::upstream::send_proxy(l.send_proxy, at)?,
    };
    let target = match (l.protocol, l.upstream, l.root, l.file) {
        (proto, Some(up), _, _) => {
            let addr =
                resolve(up.get_ref()).map_err(|m| at(up.span(), format!("`upstream`: {m}")))?;
            if proto == Protocol::Tcp {
                Target::TcpUpstream(addr, send_proxy)
            } else {
                let servers = vec![ServerConfig::new(up.get_ref().clone(), addr)];
                let pos = Pos::at(at, up.span());
                let spec = UpstreamSpec::plain(up.get_ref(), servers, pos);
                Pool::validate(&spec.servers, &spec.options)
                    .map_err(|e| at(up.span(), format!("`upstream`: {e}")))?;
                upstreams.push(spec);
                let id = UpstreamId(upstreams.len() - 1);
                Target::Http(RouterSpec::single(ActionSpec::Proxy(id)))
            }
        }
        (Protocol::Http, None, Some(root), _) => {
            let files = FileOptions::new(PathBuf::from(root.into_inner()));
            Target::Http(RouterSpec::single(ActionSpec::Files(files)))
        }
        (Protocol::Tcp, None, None, Some(file)) => {
            Target::TcpFile(PathBuf::from(file.into_inner()))
        }
        (Protocol::Tcp, None, Some(root), _) => {
            return Err(at(
                root.span(),
                "`root` needs protocol = \"http\" (tcp serves one `file`)".into(),
            ))
        }
        (Protocol::Http, None, None, Some(file)) => {
            return Err(at(
                file.span(),
                "`file` needs protocol = \"tcp\" (http serves a `root`)".into(),
            ))
        }
        (_, None, None, None) => unreachable!("checked above: exactly one target"),
    };
    let ms = |v: Option<Spanned<u64>>, default: u64, key: &str| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(Duration::from_millis(default)),
            Some(v) if *v.get_ref() == 0 => Err(at(v.span(), format!("`{key}` must be above 0"))),
            Some(v) => Ok(Duration::from_millis(*v.get_ref())),
        }
    };
    let idle_default = if l.protocol == Protocol::Tcp {
        600_000
    } else {
        60_000
    };
    Ok(ListenerSpec {
        listen,
        target,
        connect_timeout: ms(l.connect_timeout_ms, 5_000, "connect_timeout_ms")?,
        idle_timeout: ms(l.idle_timeout_ms, idle_default, "idle_timeout_ms")?,
        header_timeout: ms(l.header_timeout_ms, HEADER_TIMEOUT_MS, "header_timeout_ms")?,
        tunnel_timeout: ms(l.tunnel_timeout_ms, 600_000, "tunnel_timeout_ms")?,
        front,
    })
}
