//! The router: which virtual host (by `Host`) and which route (by the longest path prefix at
//! a segment boundary) answers a request, who may ask (allow/deny by address or CIDR), and
//! which server of an upstream pool gets a proxied request.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use tether_config::acl::{Acl, StatusFormat};
use tether_files::FileOptions;

use crate::upstream::Upstream;

/// What a route does.
#[derive(Debug, Clone)]
pub enum Action {
    Proxy(Arc<Upstream>),
    Files(Arc<FileOptions>),
    Redirect {
        status: u16,
        location: String,
    },
    /// The metrics of this tether (`status_page` routes, and the metrics listener).
    Status(StatusFormat),
    /// The simulation-server broker of this name (`/session`, `/`, `/load`, `/monitor`,
    /// relative to the route's path).
    Broker(String),
    /// Nothing but the route's `port_rewrite`: any other path is `404`.
    NotFound,
}

/// `port_rewrite`: `/<port>/<rest>` under the route goes to `host:<port>/<rest>`, HTTP and
/// WebSocket alike, for ports in `min..=max` only (never an open relay to other services).
#[derive(Debug)]
pub struct PortRewrite {
    pub host: IpAddr,
    pub min: u16,
    pub max: u16,
    /// One pool per port of `min..=max`, made on first use; after that, read without a
    /// lock (`None`: the pool could not be made, said in the log once).
    pools: Box<[OnceLock<Option<Arc<Upstream>>>]>,
}

/// Why `PortRewrite::upstream` has no pool to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRefused {
    /// The port is outside `min..=max` (`404`).
    OutOfRange,
    /// Its pool could not be made (`502`; logged when it was tried).
    NoPool,
}

impl PortRewrite {
    pub fn new(host: IpAddr, min: u16, max: u16) -> PortRewrite {
        let n = if min <= max {
            (max - min) as usize + 1
        } else {
            0
        };
        PortRewrite {
            host,
            min,
            max,
            pools: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// For `rest` (the path after the route's prefix, from its `/`): the port it names, if
    /// its first segment is a number, and the target to send (`/<rest>`, query kept).
    pub fn split(rest: &str) -> Option<(u16, String)> {
        let rest = rest.strip_prefix('/')?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let port = &rest[..end];
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let port: u16 = port.parse().ok()?;
        let tail = &rest[end..];
        let target = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Some((port, target))
    }

    /// The pool for `port`.
    pub fn upstream(&self, port: u16) -> Result<Arc<Upstream>, PortRefused> {
        let slot = port
            .checked_sub(self.min)
            .and_then(|i| self.pools.get(i as usize))
            .ok_or(PortRefused::OutOfRange)?;
        let made = slot.get_or_init(|| {
            let addr = std::net::SocketAddr::new(self.host, port);
            let server = tether_balance::ServerConfig::new(addr.to_string(), addr);
            let name = format!("port {port}");
            match tether_balance::Pool::new(&name, &[server], Default::default()) {
                Ok(pool) => Some(Arc::new(Upstream::plain(pool))),
                Err(e) => {
                    log::error!("port_rewrite: cannot make the pool of port {port}: {e}");
                    None
                }
            }
        });
        made.clone().ok_or(PortRefused::NoPool)
    }
}

/// One route of a virtual host.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path prefix, matched at a segment boundary.
    pub path: String,
    pub action: Action,
    pub acl: Acl,
    /// A request body longer than this is refused with `413` (none: no limit).
    pub max_body: Option<u64>,
    /// `/<port>/...` paths under this route go to a local port (see `PortRewrite`).
    pub ports: Option<Arc<PortRewrite>>,
    /// Header rules, path rewriting, request ids (`http/rules.rs`); `None`: nothing to do.
    pub rules: Option<Arc<tether_config::rules::RouteRules>>,
    /// Limits and basic auth (`access.rs`); `None`: nothing to check.
    pub access: Option<Arc<crate::access::Access>>,
    /// Compression of proxied answers (`http/encode.rs`); `None`: off.
    pub encode: Option<Arc<tether_compress::Policy>>,
    /// The route's (or its server's) own access log; `None`: the top-level one.
    pub access_log: Option<Arc<tether_config::access_log::AccessLogSpec>>,
}

impl Route {
    /// `/api` matches `/api`, `/api/` and `/api/x`, not `/api2`; `/` matches everything.
    pub fn matches(&self, path: &str) -> bool {
        let r = self.path.as_str();
        path.starts_with(r)
            && (path.len() == r.len()
                || r.ends_with('/')
                || path.as_bytes().get(r.len()) == Some(&b'/'))
    }
}

/// A virtual host: the names it answers to (none: any) and its routes.
#[derive(Debug, Clone, Default)]
pub struct VirtualHost {
    pub hostnames: Vec<String>,
    pub routes: Vec<Route>,
}

impl VirtualHost {
    /// Whether `host` (no port, lower case) is one of this host's names; `*.example.org`
    /// matches any subdomain.
    fn answers(&self, host: &str) -> bool {
        self.hostnames.iter().any(|n| {
            n.eq_ignore_ascii_case(host)
                || n.strip_prefix("*.").is_some_and(|suffix| {
                    host.len() > suffix.len() + 1
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                })
        })
    }
}

/// The virtual hosts of one listening address.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub hosts: Vec<VirtualHost>,
}

impl Router {
    /// A router with one catch-all host and one route `/`.
    pub fn single(action: Action) -> Router {
        let route = Route {
            path: "/".into(),
            action,
            acl: Acl::default(),
            max_body: None,
            ports: None,
            rules: None,
            access: None,
            encode: None,
            access_log: None,
        };
        Router {
            hosts: vec![VirtualHost {
                hostnames: Vec::new(),
                routes: vec![route],
            }],
        }
    }

    /// The route for `host` (the `Host` header, port allowed) and `path`. A host matching no
    /// name goes to the first virtual host (nginx's default server).
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let name = host.map(strip_port).unwrap_or("");
        let vhost = self
            .hosts
            .iter()
            .find(|v| v.answers(name))
            .or_else(|| self.hosts.iter().find(|v| v.hostnames.is_empty()))
            .or_else(|| self.hosts.first())?;
        vhost
            .routes
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| r.path.len())
    }
}

/// `example.org:8080` → `example.org`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(to: &str) -> Action {
        Action::Redirect {
            status: 302,
            location: to.into(),
        }
    }

    fn route(path: &str, to: &str) -> Route {
        Route {
            path: path.into(),
            action: redirect(to),
            acl: Acl::default(),
            max_body: None,
            ports: None,
            rules: None,
            access: None,
            encode: None,
            access_log: None,
        }
    }

    fn target(r: Option<&Route>) -> &str {
        match r.map(|r| &r.action) {
            Some(Action::Redirect { location, .. }) => location,
            _ => "-",
        }
    }

    #[test]
    fn longest_prefix_at_segment_boundary() {
        let v = VirtualHost {
            hostnames: vec![],
            routes: vec![
                route("/", "root"),
                route("/api", "api"),
                route("/api/v2", "v2"),
            ],
        };
        let r = Router { hosts: vec![v] };
        assert_eq!(target(r.route(None, "/api")), "api");
        assert_eq!(target(r.route(None, "/api/x")), "api");
        assert_eq!(target(r.route(None, "/api2")), "root");
        assert_eq!(target(r.route(None, "/api/v2/y")), "v2");
        assert_eq!(target(r.route(None, "/api/v22")), "api");
        assert_eq!(target(r.route(None, "/")), "root");
    }

    #[test]
    fn hosts_by_name_wildcard_and_default() {
        let a = VirtualHost {
            hostnames: vec!["a.example".into()],
            routes: vec![route("/", "a")],
        };
        let b = VirtualHost {
            hostnames: vec!["*.b.example".into()],
            routes: vec![route("/", "b")],
        };
        let r = Router { hosts: vec![a, b] };
        assert_eq!(target(r.route(Some("a.example:8080"), "/")), "a");
        assert_eq!(target(r.route(Some("A.EXAMPLE"), "/")), "a");
        assert_eq!(target(r.route(Some("x.b.example"), "/")), "b");
        assert_eq!(target(r.route(Some("b.example"), "/")), "a");
        assert_eq!(target(r.route(Some("other"), "/")), "a");
        assert_eq!(target(r.route(None, "/")), "a");
    }
}

#[cfg(test)]
mod port_tests {
    use std::sync::Arc;

    use super::{PortRefused, PortRewrite};

    #[test]
    fn port_paths() {
        assert_eq!(
            PortRewrite::split("/2000/x/y?q=1"),
            Some((2000, "/x/y?q=1".into()))
        );
        assert_eq!(PortRewrite::split("/2000"), Some((2000, "/".into())));
        assert_eq!(PortRewrite::split("/2000?a"), Some((2000, "/?a".into())));
        assert_eq!(PortRewrite::split("/session"), None);
        assert_eq!(PortRewrite::split("/99999/x"), None);
        let p = PortRewrite::new([127, 0, 0, 1].into(), 2000, 2999);
        assert!(p.upstream(2000).is_ok() && p.upstream(2999).is_ok());
        assert_eq!(p.upstream(3000).err(), Some(PortRefused::OutOfRange));
        assert_eq!(p.upstream(1999).err(), Some(PortRefused::OutOfRange));
        // Made once: the same pool on the next request.
        let (a, b) = (p.upstream(2500), p.upstream(2500));
        assert!(matches!((a, b), (Ok(a), Ok(b)) if Arc::ptr_eq(&a, &b)));
        assert!(PortRewrite::new([127, 0, 0, 1].into(), 10, 9)
            .upstream(10)
            .is_err());
    }
}
