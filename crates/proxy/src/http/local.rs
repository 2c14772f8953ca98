//! The answers tether writes itself for a request (phase "module" of `phases.rs`): a file
//! or directory (`static_files.rs`), the metrics (`status_page.rs`), and the `308` of a
//! plain listener that sends its clients to HTTPS. Each returns `State::Local`.

use tether_core::{Cx, Source};
use tether_http::{Method, RequestHead};

use super::conn::Conn;
use super::State;
use tether_config::acl::StatusFormat;
use tether_files::static_files::{self, FileOptions};
use tether_http::reply::Head;

/// `redirect_https`: `308` to the same URL over HTTPS (the Host without its port, then
/// the HTTPS port unless 443).
pub(super) fn redirect_https(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    head: &RequestHead,
    port: u16,
) -> State {
    let head_only = head.method == Method::Head;
    let host = match head.host() {
        Some(h) => h.to_string(),
        None => match cx.local_addr(c.client) {
            Some(a) if a.is_ipv6() => format!("[{}]", a.ip()),
            Some(a) => a.ip().to_string(),
            None => return c.status(cx, 400, head_only),
        },
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or(v6)),
        None => host.split(':').next().unwrap_or(&host).to_string(),
    };
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    let target = if head.target().starts_with('/') {
        head.target()
    } else {
        "/"
    };
    let extra = format!("Location: https://{name}{port}{target}\r\n");
    c.status_with(cx, 308, &extra, head_only)
}

/// A `status_page` route: the metrics as eXpServer's JSON, Prometheus text or an HTML
/// page (`status_page.rs`).
pub(super) fn serve_status(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    format: StatusFormat,
    req: &RequestHead,
) -> State {
    match status_answer(&c.ctx, format, req.method, c.keep_alive) {
        Ok(head) => c.respond(cx, 200, head.into(), None),
        Err((status, extra)) => c.status_with(cx, status, extra, req.method == Method::Head),
    }
}

/// The bytes of a `status_page` route's answer (HTTP/1.1 and HTTP/2), or the status (and
/// extra header lines) to answer instead.
pub(crate) fn status_answer(
    ctx: &super::ListenerCtx,
    format: StatusFormat,
    method: Method,
    keep_alive: bool,
) -> Result<Vec<u8>, (u16, &'static str)> {
    let Some(registry) = ctx.metrics.as_ref() else {
        return Err((404, ""));
    };
    if !matches!(method, Method::Get | Method::Head) {
        return Err((405, "Allow: GET, HEAD\r\n"));
    }
    let (body, ctype) = crate::status_page::body(format, registry, &ctx.topology);
    let mut head = Head::new(200, &ctx.server, body.len() + 96);
    head.content(ctype, body.len())
        .lines("Cache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\n");
    let mut head = head.end(keep_alive);
    if method != Method::Head {
        head.extend_from_slice(body.as_bytes());
    }
    Ok(head)
}

/// A `files` route: the file, a directory listing or an error page.
pub(super) fn serve_file(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    opts: &FileOptions,
    req: &RequestHead,
) -> State {
    let reply = static_files::serve(opts, req, &c.ctx.server, c.keep_alive);
    c.keep_alive = !reply.close;
    if reply.status >= 400 {
        if let Some(page) = c.error_page(reply.status, "", req.method == Method::Head) {
            return c.respond(cx, reply.status, page.into(), None);
        }
    }
    let source = reply.body.map(|(file, offset, len)| Source::File {
        file,
        offset,
        len: Some(len),
    });
    c.respond(cx, reply.status, reply.head, source)
}
