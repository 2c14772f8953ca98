//! Which server of an upstream a request goes to, and what the heads carry for that: the
//! affinity decision of one request (`decide`), the retry after a failed connect
//! (`repick`), and what a response teaches (`on_response`). See `upstream.rs` for the kinds.
//!
//! - cookie: a valid sealed cookie → its server (`Pool::resolve`: kept while available,
//!   else re-pinned or refused per `failover`); none, or a bad one → balanced, and the
//!   response sets a new cookie (a bad one with `strict` → `503`).
//! - session_id: a value `<tag>.<original>` whose tag opens → that server (or its re-pin
//!   from the store); the upstream sees `<original>`. A tag naming a server no longer in
//!   the pool → `503` or a re-pin (`unknown_tag`). Untagged → round robin, and the
//!   response's new session id (its `Set-Cookie`, or the configured header) is tagged.
//! - learn: the backend's session cookie value → server, from the store (memory or Redis;
//!   a miss in memory asks Redis first: `Decision::Fetch`); the response's `Set-Cookie`
//!   of that name is learned.
//!
//! Re-pins are written to the store, so every instance sharing it follows them.

use std::time::{Duration, Instant};

use tether_balance::{find_cookie, set_cookie_with, Affinity as Resolved, FailoverMode, ServerRef};
use tether_http::{RequestHead, ResponseHead};
use tether_store::Store;

use super::forward::Edits;
use crate::upstream::{Affinity, SessionIdAffinity, Upstream};
use tether_config::spec::{IdCarrier, IdWriter, UnknownTag};

/// Everything a decision reads besides the request (`ListenerCtx::affinity`).
pub(crate) struct Ctx<'a> {
    pub up: &'a Upstream,
    pub store: &'a dyn Store,
    pub now: Instant,
    /// Seconds since the Unix epoch (cookie expiry).
    pub unix: u64,
    /// The client address bytes (`ip_hash`).
    pub key: Option<&'a [u8]>,
    /// The store is shared with other instances (Redis): a miss in memory is asked there.
    pub shared: bool,
    /// The client came over TLS (cookies tether writes are `Secure` with `cookie_secure =
    /// "auto"`).
    pub tls: bool,
}

thread_local! {
    /// `Pick`s' boxes, for the next request (`spare.rs`).
    pub(crate) static SPARE_PICK: crate::spare::Spares<Pick> = const { crate::spare::Spares::new() };
}

/// Where a request goes.
pub(crate) enum Decision {
    /// Boxed (in a spare box: `Decision::go`); take it out with `Decision::pick_of`.
    Go(Box<Pick>),
    /// Answer this status with this message; forward nothing.
    Refuse(u16, &'static str),
    /// A learned session this instance does not hold in memory: ask the store (Redis), then
    /// decide again with its answer.
    Fetch(String),
}

impl Decision {
    fn go(p: Pick) -> Decision {
        Decision::Go(crate::spare::boxed(&SPARE_PICK, p))
    }

    /// The pick of a `Go`, its box kept for the next one.
    pub(crate) fn pick_of(b: Box<Pick>) -> Pick {
        crate::spare::unbox(&SPARE_PICK, b)
    }
}

/// The server chosen and what the affinity adds to the heads.
pub(crate) struct Pick {
    pub server: ServerRef,
    /// Changes to the request sent upstream.
    pub request: Edits,
    /// Lines and replacements for the response sent to the client.
    pub response: Edits,
    /// The session was pinned (a cookie, tag or learned entry named the server).
    pub pinned: bool,
    /// For the access log: `hit` (pinned), `repin` (its server was gone: a new one),
    /// `miss` (a token tether could not use), `new` (no token), `-` (no affinity).
    pub outcome: &'static str,
    /// The store key this session's pin lives under (session_id re-pins, learn).
    store_key: Option<String>,
    /// The session id value as the client sent it, and its original (untagged) part.
    tagged: Option<(String, String)>,
    /// The request's urlencoded body with the session id's tag stripped (a `form`
    /// carrier): sent instead of the client's (`form_body.rs`).
    pub body: Option<bytes::Bytes>,
    /// The answer's body may hold a new session id (`session_body.rs`).
    pub tag_body: bool,
}

/// The store key of a learned session cookie value.
fn learn_key(up: &Upstream, value: &str) -> String {
    format!("learn:{}:{value}", up.name())
}

/// The store key of a re-pinned session id tag.
fn repin_key(up: &Upstream, tagged: &str) -> String {
    format!("sid:{}:{tagged}", up.name())
}

fn cookies(req: &RequestHead) -> impl Iterator<Item = &str> {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
}

fn request_cookie<'a>(req: &'a RequestHead, name: &str) -> Option<&'a str> {
    cookies(req).find_map(|h| find_cookie(h, name))
}

/// The value of query parameter `name` in `target`, raw (not decoded).
fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The key `ip_hash` hashes when `hash_key` names a part of the request: `Some(None)`
/// when the request lacks it (balanced by least connections, as HAProxy's `balance hdr`
/// falls back), `None` for the client address (the context's key).
fn hash_key<'a>(up: &Upstream, req: &'a RequestHead) -> Option<Option<&'a [u8]>> {
    use tether_config::spec::HashKey;
    let found = match &up.hash_key {
        HashKey::ClientIp => return None,
        HashKey::Header(name) => req.header(name),
        HashKey::Cookie(name) => request_cookie(req, name).map(str::as_bytes),
        HashKey::Query(name) => query_param(req.target(), name).map(str::as_bytes),
    };
    Some(found.filter(|v| !v.is_empty()))
}

fn balanced(ctx: &Ctx<'_>) -> Option<ServerRef> {
    ctx.up.pool.select(ctx.key, ctx.now)
}

fn pick(server: ServerRef) -> Pick {
    Pick {
        server,
        request: Edits::default(),
        response: Edits::default(),
        pinned: false,
        outcome: "new",
        store_key: None,
        tagged: None,
        body: None,
        tag_body: false,
    }
}

const NO_SERVER: &str = "no server of this upstream is available";
pub(crate) const SERVER_GONE: &str = "the server holding this session is not available";

/// Decide where `req` goes. `fetched`: the store's answer after a `Decision::Fetch`.
pub(crate) fn decide(
    ctx: &Ctx<'_>,
    req: &RequestHead,
    form: Option<&[u8]>,
    fetched: Option<Option<String>>,
) -> Decision {
    let keyed;
    let ctx = match hash_key(ctx.up, req) {
        Some(key) => {
            keyed = Ctx { key, ..*ctx };
            &keyed
        }
        None => ctx,
    };
    match &ctx.up.affinity {
        Affinity::None => match balanced(ctx) {
            Some(s) => {
                let mut p = pick(s);
                p.outcome = "-";
                Decision::go(p)
            }
            None => Decision::Refuse(503, NO_SERVER),
        },
        Affinity::Cookie(c) => {
            let opened = request_cookie(req, &c.name).map(|v| c.sealer.open_cookie(v, ctx.unix));
            let bad = matches!(opened, Some(Err(_)));
            let target = match opened {
                Some(Ok(id)) => Some(id),
                Some(Err(e)) if c.strict => {
                    log::info!("upstream {}: affinity cookie refused: {e:?}", ctx.up.name());
                    return Decision::Refuse(503, "invalid affinity cookie");
                }
                _ => None,
            };
            let (server, pinned, outcome) = match target {
                Some(id) => match resolve(ctx, &id) {
                    Some(Resolved::Keep(s)) => (s, true, "hit"),
                    Some(Resolved::Repin(s)) => (s, false, "repin"),
                    _ => return Decision::Refuse(503, SERVER_GONE),
                },
                None => match balanced(ctx) {
                    Some(s) => (s, false, if bad { "miss" } else { "new" }),
                    None => return Decision::Refuse(503, NO_SERVER),
                },
            };
            let mut p = pick(server);
            p.pinned = pinned;
            p.outcome = outcome;
            if !pinned {
                p.response.add = cookie_line(ctx, &p.server);
            }
            Decision::go(p)
        }
        Affinity::SessionId(sid) => {
            let mut d = decide_session_id(ctx, sid, req, form, fetched);
            if let (Decision::Go(p), Some(b)) = (&mut d, &sid.body) {
                p.tag_body = b.matches(req, form);
            }
            d
        }
        Affinity::Learn(l) => {
            let Some(value) = request_cookie(req, &l.cookie) else {
                return match balanced(ctx) {
                    Some(s) => Decision::go(pick(s)),
                    None => Decision::Refuse(503, NO_SERVER),
                };
            };
            let key = learn_key(ctx.up, value);
            let known = match fetched {
                Some(answer) => answer,
                None => match ctx.store.get(&key) {
                    Some(v) => Some(v),
                    None if ctx.shared => return Decision::Fetch(key),
                    None => None,
                },
            };
            let known_entry = known.is_some();
            let (server, pinned) = match known {
                Some(id) => match resolve(ctx, &id) {
                    Some(Resolved::Keep(s)) => {
                        ctx.store.touch(&key, l.ttl);
                        (s, true)
                    }
                    Some(Resolved::Repin(s)) => {
                        log::info!(
                            "upstream {}: session re-pinned {id} → {}",
                            ctx.up.name(),
                            s.id()
                        );
                        ctx.store.put(&key, s.id(), l.ttl);
                        (s, false)
                    }
                    _ => return Decision::Refuse(503, SERVER_GONE),
                },
                None => match balanced(ctx) {
                    Some(s) => (s, false),
                    None => return Decision::Refuse(503, NO_SERVER),
                },
            };
            let mut p = pick(server);
            p.pinned = pinned;
            p.outcome = match (pinned, known_entry) {
                (true, _) => "hit",
                (false, true) => "repin",
                (false, false) => "miss",
            };
            p.store_key = Some(key);
            Decision::go(p)
        }
    }
}

/// `Pool::resolve` with the upstream's failover mode; `None` when the id is unknown and
/// the mode is strict.
fn resolve(ctx: &Ctx<'_>, id: &str) -> Option<Resolved> {
    match ctx.up.pool.resolve(id, ctx.key, ctx.up.failover, ctx.now) {
        Resolved::Refuse => None,
        r => Some(r),
    }
}

/// tether's affinity cookie for `server`, as a `Set-Cookie` line.
fn cookie_line(ctx: &Ctx<'_>, server: &ServerRef) -> String {
    let Affinity::Cookie(c) = &ctx.up.affinity else {
        return String::new();
    };
    let expiry = ctx.unix + c.ttl.as_secs();
    let value = c.sealer.seal_cookie(server.id(), expiry);
    format!(
        "Set-Cookie: {}\r\n",
        set_cookie_with(&c.name, &value, expiry, ctx.unix, &ctx.up.cookie, ctx.tls)
    )
}

/// The session id as carrier `c` has it in the request (`form`: its urlencoded body, read).
fn carried<'a>(c: &IdCarrier, req: &'a RequestHead, form: Option<&'a [u8]>) -> Option<&'a str> {
    match c {
        IdCarrier::Cookie(name) => request_cookie(req, name),
        IdCarrier::Query(name) => query_param(req.target(), name),
        IdCarrier::Header(name) => req.header(name).and_then(|v| std::str::from_utf8(v).ok()),
        IdCarrier::Form(name) => form.and_then(|f| super::form_body::field(f, name)),
    }
}

/// A tagged session id found in a carrier: the carrier, the value as sent, the server id
/// sealed in its tag and the original id.
struct Found<'a> {
    carrier: &'a IdCarrier,
    value: &'a str,
    server: String,
    original: &'a str,
}

fn decide_session_id(
    ctx: &Ctx<'_>,
    sid: &SessionIdAffinity,
    req: &RequestHead,
    form: Option<&[u8]>,
    fetched: Option<Option<String>>,
) -> Decision {
    // Every carrier with an authentic tag; the first (in `session_read` order) decides,
    // and every one is stripped.
    let found: Vec<Found<'_>> = sid
        .read
        .iter()
        .filter_map(|c| {
            let value = carried(c, req, form)?;
            let (server, original) = sid.sealer.split_tagged(value)?;
            Some(Found {
                carrier: c,
                value,
                server,
                original,
            })
        })
        .collect();
    let Some(first) = found.first() else {
        // Untagged (a new session, or a value tether did not tag): round robin.
        return match balanced(ctx) {
            Some(s) => Decision::go(pick(s)),
            None => Decision::Refuse(503, NO_SERVER),
        };
    };
    let (value, tag_id, original) = (first.value, first.server.clone(), first.original);
    let key = repin_key(ctx.up, value);
    let repinned = match fetched {
        Some(answer) => answer,
        None => match ctx.store.get(&key) {
            Some(v) => Some(v),
            None if ctx.shared
                && !ctx
                    .up
                    .pool
                    .server(&tag_id)
                    .is_some_and(|s| s.is_available(ctx.now)) =>
            {
                return Decision::Fetch(key)
            }
            None => None,
        },
    };
    let target = repinned.unwrap_or(tag_id);
    let known = ctx.up.pool.server(&target).is_some();
    let (server, pinned) = if !known && sid.unknown == UnknownTag::Error {
        log::info!(
            "upstream {}: session tag names unknown server {target:?}",
            ctx.up.name()
        );
        return Decision::Refuse(503, SERVER_GONE);
    } else {
        let mode = if known {
            ctx.up.failover
        } else {
            FailoverMode::Repin
        };
        match ctx.up.pool.resolve(&target, ctx.key, mode, ctx.now) {
            Resolved::Keep(s) => (s, true),
            Resolved::Repin(s) => {
                log::info!(
                    "upstream {}: session re-pinned {target} → {}",
                    ctx.up.name(),
                    s.id()
                );
                ctx.store.put(&key, s.id(), sid.repin_ttl);
                (s, false)
            }
            Resolved::Refuse => return Decision::Refuse(503, SERVER_GONE),
        }
    };
    let mut p = pick(server);
    p.pinned = pinned;
    p.outcome = if pinned { "hit" } else { "repin" };
    p.store_key = Some(key);
    p.tagged = Some((value.to_string(), original.to_string()));
    for f in &found {
        strip_tag(req, f, form, &mut p);
    }
    if !pinned {
        retag(ctx, sid, &p.server, original, &mut p.response);
    }
    Decision::go(p)
}

/// Forward the session id without tether's tag: the backend sees its own value.
fn strip_tag(req: &RequestHead, f: &Found<'_>, form: Option<&[u8]>, p: &mut Pick) {
    let (value, original) = (f.value, f.original);
    let e = &mut p.request;
    match f.carrier {
        IdCarrier::Cookie(name) => {
            for h in cookies(req) {
                if find_cookie(h, name) == Some(value) {
                    let new =
                        h.replacen(&format!("{name}={value}"), &format!("{name}={original}"), 1);
                    e.replace
                        .push(("cookie".into(), h.as_bytes().to_vec(), new.into_bytes()));
                }
            }
        }
        IdCarrier::Query(name) => {
            let target = e.target.clone().unwrap_or_else(|| req.target().to_string());
            e.target =
                Some(target.replacen(&format!("{name}={value}"), &format!("{name}={original}"), 1));
        }
        IdCarrier::Header(name) => {
            e.replace.push((
                name.clone(),
                value.as_bytes().to_vec(),
                original.as_bytes().to_vec(),
            ));
        }
        IdCarrier::Form(name) => {
            let body = p.body.as_deref().or(form);
            if let Some(new) =
                body.and_then(|b| super::form_body::replace_field(b, name, value, original))
            {
                p.body = Some(new);
            }
        }
    }
}

/// After a re-pin, hand the client its session id tagged with the new server (a cookie
/// carrier that tether also writes can be re-set; other carriers follow the re-pin kept in
/// the store).
fn retag(
    ctx: &Ctx<'_>,
    sid: &SessionIdAffinity,
    server: &ServerRef,
    original: &str,
    e: &mut Edits,
) {
    for w in &sid.write {
        let IdWriter::SetCookie(name) = w else {
            continue;
        };
        if !sid.read.contains(&IdCarrier::Cookie(name.clone())) {
            continue;
        }
        let value = sid.sealer.tag_value(server.id(), original);
        let attributes = ctx.up.cookie.attributes(ctx.tls);
        e.add
            .push_str(&format!("Set-Cookie: {name}={value}{attributes}\r\n"));
    }
}

/// A connect to `p.server` failed: pick another server (never one in `tried`) and carry the
/// session's affinity over to it. `None`: no other server may take it.
pub(crate) fn repick(ctx: &Ctx<'_>, p: &Pick, tried: &[String]) -> Option<Pick> {
    if p.pinned && ctx.up.failover == FailoverMode::Strict {
        return None;
    }
    let server = ctx.up.pool.select_excluding(ctx.key, tried, ctx.now)?;
    let mut next = pick(server);
    next.request = p.request.clone();
    next.store_key = p.store_key.clone();
    next.tagged = p.tagged.clone();
    next.body = p.body.clone();
    next.tag_body = p.tag_body;
    match &ctx.up.affinity {
        Affinity::Cookie(_) => next.response.add = cookie_line(ctx, &next.server),
        Affinity::SessionId(sid) => {
            if let (Some(key), Some((_, original))) = (&next.store_key, &next.tagged) {
                ctx.store.put(key, next.server.id(), sid.repin_ttl);
                retag(ctx, sid, &next.server, original, &mut next.response);
            }
        }
        Affinity::Learn(l) => {
            if let (Some(key), true) = (&next.store_key, p.pinned) {
                ctx.store.put(key, next.server.id(), l.ttl);
            }
        }
        Affinity::None => {}
    }
    Some(next)
}

/// The response head arrived: tag a new session id, learn a session cookie. Adds to
/// `p.response` what the client's head must change.
pub(crate) fn on_response(ctx: &Ctx<'_>, p: &mut Pick, resp: &ResponseHead) {
    on_response_fields(ctx, p, resp.headers());
}

/// `on_response` for a response given as fields (an HTTP/2 upstream's, `h2/h2up.rs`).
pub(crate) fn on_response_fields<'a>(
    ctx: &Ctx<'_>,
    p: &mut Pick,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) {
    match &ctx.up.affinity {
        Affinity::SessionId(sid) => {
            let server = p.server.clone();
            for (name, value) in headers {
                let Ok(text) = std::str::from_utf8(value) else {
                    continue;
                };
                let new = sid.write.iter().find_map(|w| match w {
                    IdWriter::SetCookie(c) if name.eq_ignore_ascii_case("set-cookie") => {
                        tag_set_cookie(sid, &server, c, text)
                    }
                    IdWriter::Header(h) if name.eq_ignore_ascii_case(h) => {
                        Some(sid.sealer.tag_value(server.id(), text))
                    }
                    _ => None,
                });
                if let Some(new) = new {
                    p.response
                        .replace
                        .push((name.to_string(), value.to_vec(), new.into_bytes()));
                }
            }
        }
        Affinity::Learn(l) => {
            for (name, value) in headers {
                if !name.eq_ignore_ascii_case("set-cookie") {
                    continue;
                }
                let Ok(text) = std::str::from_utf8(value) else {
                    continue;
                };
                let Some(v) = set_cookie_value(text, &l.cookie) else {
                    continue;
                };
                if !v.is_empty() {
                    ctx.store.put(&learn_key(ctx.up, v), p.server.id(), l.ttl);
                }
            }
        }
        _ => {}
    }
}

/// The value a `Set-Cookie` header sets for cookie `name`, if it is that cookie.
fn set_cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let first = header.split(';').next()?;
    let (n, v) = first.split_once('=')?;
    (n.trim() == name).then(|| v.trim())
}

/// A `Set-Cookie` for the session cookie with its value tagged; `None` for other cookies or
/// a value already tagged by us.
fn tag_set_cookie(
    sid: &SessionIdAffinity,
    server: &ServerRef,
    name: &str,
    header: &str,
) -> Option<String> {
    let v = set_cookie_value(header, name)?;
    if v.is_empty() || sid.sealer.split_tagged(v).is_some() {
        return None;
    }
    let tagged = sid.sealer.tag_value(server.id(), v);
    let attributes = &header[header.find(';').unwrap_or(header.len())..];
    Some(format!("{name}={tagged}{attributes}"))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_set_cookie_values() {
        assert_eq!(query_param("/a?x=1&sid=T.v&y=2", "sid"), Some("T.v"));
        assert_eq!(query_param("/a?sidx=1", "sid"), None);
        assert_eq!(query_param("/a", "sid"), None);
        assert_eq!(
            set_cookie_value("SID=abc; Path=/; HttpOnly", "SID"),
            Some("abc")
        );
        assert_eq!(set_cookie_value("OTHER=abc", "SID"), None);
    }
}
