//! What a worker runs, built once from checked `Settings` (plain data, `config/`): the
//! routers of the http listeners with their upstream pools (servers, counters, health
//! state, port-rewrite pools), the TLS clients of the upstreams, the rustls configs of the
//! TLS listeners, and the ACME state. The master and `tether check` only check; a worker
//! process builds this once (`server::Shared::open`) and its event-loop threads share it.
//!
//! A build reads the certificate, key and CA files again; the check already read them, so a
//! build error means a file changed in between. It is reported at the config position that
//! named the file, like a check error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tether_balance::{Pool, Sealer};

use crate::router::{Action, PortRewrite, Route, Router, VirtualHost};
use crate::tls::{client_config, client_for, server_config, ListenerTls};
use crate::upstream::{Affinity, CookieAffinity, SessionIdAffinity, Upstream};
use tether_acme::Acme;
use tether_config::certs::{load_cert, LoadedCert};
use tether_config::{
    ActionSpec, AffinitySpec, ConfigError, ListenerSpec, Pos, RouteSpec, RouterSpec, SealKeys,
    Settings, Target, TlsSpec, UpstreamId, UpstreamSpec,
};

/// The runtime objects of one config.
pub struct Runtime {
    listeners: Vec<Listener>,
    pools: Vec<Arc<Upstream>>,
    acme: Option<Arc<Acme>>,
    /// The named request limits the routes use (for the metrics).
    limits: Vec<Arc<crate::access::Limit>>,
}

/// One listener as it runs.
pub struct Listener {
    pub spec: Arc<ListenerSpec>,
    /// http: its virtual hosts and routes, holding their pools.
    pub router: Option<Arc<Router>>,
    /// Its rustls config, when it speaks TLS.
    pub tls: Option<ListenerTls>,
}

/// Certificates expiring within this many days are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

impl Runtime {
    /// Every certificate the listeners serve, once each (by path).
    pub fn certificates(&self) -> Vec<LoadedCert> {
        let mut seen: HashMap<PathBuf, LoadedCert> = HashMap::new();
        for l in self.listeners() {
            if let Some(t) = &l.tls {
                for c in t.store.certs() {
                    seen.entry(c.cert_path.clone()).or_insert_with(|| c.clone());
                }
            }
        }
        let mut all: Vec<LoadedCert> = seen.into_values().collect();
        all.sort_by(|a, b| a.cert_path.cmp(&b.cert_path));
        all
    }

    /// What to warn about at start (and, for expiry, daily): certificates expiring within
    /// [`EXPIRY_WARNING_DAYS`], upstreams whose certificates are not verified.
    pub fn warnings(&self) -> Vec<String> {
        let now = SystemTime::now();
        let mut out: Vec<String> = self
            .certificates()
            .iter()
            .filter(|c| c.days_left(now) < EXPIRY_WARNING_DAYS)
            .map(|c| {
                format!(
                    "certificate {} ({}) expires in {} day(s)",
                    c.cert_path.display(),
                    c.names.join(", "),
                    c.days_left(now)
                )
            })
            .collect();
        let mut seen = Vec::new();
        for up in self.pools() {
            if up.tls_unverified && !seen.contains(&up.name()) {
                seen.push(up.name());
                out.push(format!(
                    "upstream {:?}: TLS certificates are not verified (verify = false)",
                    up.name()
                ));
            }
        }
        out
    }

    /// Build everything `settings` runs on. Routes naming one upstream share its pool.
    pub fn build(settings: &Settings) -> Result<Runtime, ConfigError> {
        let acme = settings.acme.as_ref().map(Acme::build);
        let mut upstreams = Upstreams {
            specs: &settings.upstreams,
            built: vec![None; settings.upstreams.len()],
            order: Vec::new(),
            access: crate::access::Builder::default(),
        };
        let mut listeners = Vec::with_capacity(settings.listeners.len());
        for spec in &settings.listeners {
            let router = match &spec.target {
                Target::Http(r) => Some(Arc::new(upstreams.router(r)?)),
                Target::TcpUpstream(..) | Target::TcpFile(_) => None,
            };
            let tls = (spec.front.tls.as_ref())
                .map(|t| listener_tls(t, acme.as_ref()))
                .transpose()?;
            listeners.push(Listener {
                spec: Arc::new(spec.clone()),
                router,
                tls,
            });
        }
        Ok(Runtime {
            listeners,
            limits: upstreams.access.limits(),
            pools: upstreams.order,
            acme,
        })
    }

    /// The listeners, in the order of `Settings::listeners`.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Every pool a route proxies to, once each, in config order.
    pub fn pools(&self) -> &[Arc<Upstream>] {
        &self.pools
    }

    /// The ACME state, when the config has `[acme]`.
    /// The named request limits (`[[limit]]`) the routes use.
    pub fn limits(&self) -> &[Arc<crate::access::Limit>] {
        &self.limits
    }

    pub fn acme(&self) -> Option<&Arc<Acme>> {
        self.acme.as_ref()
    }
}

/// The upstreams of a config, each built when a route first names it.
struct Upstreams<'a> {
    specs: &'a [UpstreamSpec],
    built: Vec<Option<Arc<Upstream>>>,
    /// In the order routes name them.
    order: Vec<Arc<Upstream>>,
    access: crate::access::Builder,
}

impl Upstreams<'_> {
    fn router(&mut self, spec: &RouterSpec) -> Result<Router, ConfigError> {
        let mut hosts = Vec::with_capacity(spec.hosts.len());
        for h in &spec.hosts {
            let routes = h
                .routes
                .iter()
                .map(|r| self.route(r))
                .collect::<Result<_, _>>()?;
            hosts.push(VirtualHost {
                hostnames: h.hostnames.clone(),
                routes,
            });
        }
        Ok(Router { hosts })
    }

    fn route(&mut self, r: &RouteSpec) -> Result<Route, ConfigError> {
        let action = match &r.action {
            ActionSpec::Proxy(id) => Action::Proxy(self.upstream(*id)?),
            ActionSpec::Files(f) => Action::Files(Arc::new(f.clone())),
            ActionSpec::Redirect { status, location } => Action::Redirect {
                status: *status,
                location: location.clone(),
            },
            ActionSpec::Status(format) => Action::Status(*format),
            ActionSpec::Broker(name) => Action::Broker(name.clone()),
            ActionSpec::NotFound => Action::NotFound,
        };
        Ok(Route {
            path: r.path.clone(),
            action,
            acl: r.acl.clone(),
            max_body: r.max_body,
            ports: r
                .ports
                .map(|p| Arc::new(PortRewrite::new(p.host, p.min, p.max))),
            rules: (!r.rules.is_empty()).then(|| Arc::new(r.rules.clone())),
            access: self
                .access
                .access(&r.access)
                .map_err(|e| Pos::default().error(format!("basic auth: {e}")))?,
            encode: r.encode.clone().map(Arc::new),
            access_log: r.access_log.clone().map(Arc::new),
        })
    }

    fn upstream(&mut self, id: UpstreamId) -> Result<Arc<Upstream>, ConfigError> {
        if let Some(Some(up)) = self.built.get(id.0) {
            return Ok(up.clone());
        }
        let Some(spec) = self.specs.get(id.0) else {
            let e = format!("a route names upstream #{} of {}", id.0, self.specs.len());
            return Err(Pos::default().error(e));
        };
        let up = Arc::new(build_upstream(spec)?);
        if let Some(slot) = self.built.get_mut(id.0) {
            *slot = Some(up.clone());
        }
        self.order.push(up.clone());
        Ok(up)
    }
}

/// An upstream with its pool, sealer and TLS clients.
pub fn build_upstream(spec: &UpstreamSpec) -> Result<Upstream, ConfigError> {
    let name = &spec.name;
    let pool = if spec.discover.is_some() {
        Pool::new_dynamic(name, &spec.servers, spec.options.clone())
    } else {
        Pool::new(name, &spec.servers, spec.options.clone())
    };
    let pool = pool.map_err(|e| spec.pos.error(format!("upstream {name:?}: {e}")))?;
    let sealer = |keys: &SealKeys| {
        Sealer::from_keys(&keys.0)
            .map(Arc::new)
            .map_err(|e| spec.pos.error(format!("`keys`: {e}")))
    };
    let affinity = match &spec.affinity {
        AffinitySpec::None => Affinity::None,
        AffinitySpec::Cookie {
            name,
            keys,
            ttl,
            strict,
        } => Affinity::Cookie(CookieAffinity {
            name: name.clone(),
            sealer: sealer(keys)?,
            ttl: *ttl,
            strict: *strict,
        }),
        AffinitySpec::SessionId {
            read,
            write,
            body,
            form_max,
            keys,
            unknown,
            repin_ttl,
        } => Affinity::SessionId(SessionIdAffinity {
            read: read.clone(),
            write: write.clone(),
            body: match body {
                Some(b) => Some(
                    crate::http::session_body::BodyTag::build(b)
                        .map_err(|m| spec.pos.error(format!("`session_body`: {m}")))?,
                ),
                None => None,
            },
            form_max: *form_max,
            sealer: sealer(keys)?,
            unknown: *unknown,
            repin_ttl: *repin_ttl,
        }),
        AffinitySpec::Learn(l) => Affinity::Learn(l.clone()),
    };
    let mut tls = Vec::new();
    if let Some(t) = &spec.tls {
        let config = client_config(&t.options).map_err(|m| t.pos.error(format!("`tls`: {m}")))?;
        let config = crate::h2up::with_alpn(spec.protocol, config);
        for addr in &t.servers {
            let client = client_for(&config, t.options.sni.as_deref(), addr)
                .map_err(|m| t.pos.error(format!("`tls` for server {addr:?}: {m}")))?;
            tls.push(client);
        }
    }
    Ok(Upstream {
        pool: Arc::new(pool),
        affinity,
        failover: spec.failover,
        retries: spec.retries,
        tls,
        tls_unverified: spec.tls.as_ref().is_some_and(|t| !t.options.verify),
        send_proxy: spec.send_proxy,
        cookie: spec.cookie,
        protocol: spec.protocol,
        h2_keep: spec.h2,
        hash_key: spec.hash_key.clone(),
    })
}

/// A listener's rustls config: its certificates read, the ACME resolver when it has names.
fn listener_tls(t: &TlsSpec, acme: Option<&Arc<Acme>>) -> Result<ListenerTls, ConfigError> {
    let certs = t
        .certs
        .iter()
        .map(|c| load_cert(&c.cert, &c.key).map_err(|m| c.pos.error(m)))
        .collect::<Result<Vec<_>, _>>()?;
    if !t.acme_names.is_empty() && acme.is_none() {
        return Err(t
            .pos
            .error("ACME certificates need an [acme] table (email, agree_tos = true)".into()));
    }
    server_config(t, certs, acme.cloned()).map_err(|m| t.pos.error(format!("`tls`: {m}")))
}

#[cfg(test)]
mod tests;
