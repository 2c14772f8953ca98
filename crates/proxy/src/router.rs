//! The router: which virtual host (by `Host`) and which route (by the longest path prefix at
//! a segment boundary) answers a request, who may ask (allow/deny by address or CIDR), and
//! which server of an upstream pool gets a proxied request.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use crate::static_files::FileOptions;
use crate::upstream::Upstream;

/// An address or a network: `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("not an address: {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Who may use a route: denied if in `deny`; if `allow` is not empty, only those in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Acl {
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else {
            return self.allow.is_empty() && self.deny.is_empty();
        };
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

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

/// How a status route shows the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// eXpServer's metrics JSON (what its dashboard reads from `/api`).
    Json,
    /// Prometheus text exposition.
    Prometheus,
    /// An HTML page for people: listeners, pools, servers, counters (`status_page.rs`).
    Html,
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

    #[test]
    fn cidr_and_acl() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let acl = Acl {
            allow: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            deny: vec![Cidr::parse("127.0.0.2").unwrap()],
        };
        assert!(acl.permits(Some("127.0.0.1".parse().unwrap())));
        assert!(!acl.permits(Some("127.0.0.2".parse().unwrap())));
        assert!(!acl.permits(Some("10.0.0.1".parse().unwrap())));
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
