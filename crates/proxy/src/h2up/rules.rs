//! A route's header rules and request id on calls to HTTP/2 upstreams, for HTTP/1.1 and
//! HTTP/2 clients alike: the request's header list gets the route's request rules once the
//! server is picked (`{upstream_addr}` known), the answer's list its response rules before
//! it is written to the client in either protocol (`http::rules::apply_fields`, the same
//! plan as the HTTP/1.1 heads get).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tether_config::rules::RouteRules;
use tether_core::tls::TlsInfo;
use tether_http::RequestHead;

use crate::http::affinity::Pick;
use crate::http::phases::Proxied;
use crate::http::rules::{apply_fields, Vars};
use crate::upstream::Upstream;

/// What a call keeps to apply its route's rules (only when the route has rules).
pub(crate) struct CallRules {
    rules: Arc<RouteRules>,
    id: Option<Box<str>>,
    /// The client's request, read by placeholders (`{header.NAME}`, `{path}`...).
    req: RequestHead,
    client: Option<SocketAddr>,
    tls: Option<Arc<TlsInfo>>,
}

impl CallRules {
    /// `req`'s rules, `None` when its route has none.
    pub fn of(
        req: &Proxied,
        client: Option<SocketAddr>,
        tls: Option<Arc<TlsInfo>>,
    ) -> Option<Box<CallRules>> {
        let rules = req.rules.clone()?;
        Some(Box::new(CallRules {
            rules,
            id: req.request_id.clone(),
            req: req.head.clone(),
            client,
            tls,
        }))
    }

    fn vars<'a>(&'a self, up: &'a Upstream, pick: &Pick) -> Vars<'a> {
        Vars {
            client: self.client,
            tls: self.tls.clone(),
            req: &self.req,
            request_id: self.id.as_deref().unwrap_or(""),
            upstream_name: up.name(),
            upstream_addr: pick.server.addr(),
        }
    }

    /// The request rules on the upstream request's list.
    pub fn request(&self, fields: &mut Vec<(Bytes, Bytes)>, up: &Upstream, pick: &Pick) {
        let vars = self.vars(up, pick);
        apply_fields(fields, &self.rules.request, self.id.as_deref(), &vars, true);
    }

    /// The response rules on the answer's list.
    pub fn response(&self, fields: &mut Vec<(Bytes, Bytes)>, up: &Upstream, pick: &Pick) {
        let vars = self.vars(up, pick);
        apply_fields(
            fields,
            &self.rules.response,
            self.id.as_deref(),
            &vars,
            false,
        );
    }
}
