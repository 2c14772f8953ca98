//! Phase 6½, read the form: a `session_id` upstream with a `form` carrier needs the
//! request's `application/x-www-form-urlencoded` body before it picks a server (MapGuide's
//! AJAX viewer posts `SESSION=` in the body). Shared by HTTP/1.1 (`State::ReadingForm`,
//! the body gathered in `Conn::buf`) and HTTP/2 (`Work::ReadingForm`, the body kept in the
//! stream's `Early` without acknowledging it).
//!
//! Read when the body has a `Content-Length` of 1 to `session_form_max_bytes` (default
//! 64 KiB); a longer or chunked one, or a multipart form, is not read: the request is
//! balanced as one without an id (a log line says so, once per upstream and reason). The
//! field's tag is stripped by `affinity.rs` (`Pick::body`), and the new length replaces
//! the `Content-Length` (`Proxied::decide`).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use tether_core::{Cx, PipeOpts, Sink, Source};
use tether_http::{BodyKind, RequestHead};

use super::conn::Conn;
use super::phases::{self, Proxied};
use super::State;
use crate::upstream::Affinity;
use tether_config::spec::IdCarrier;

/// Log lines said once per process: a form over the limit, a chunked form.
static SAID_OVER: AtomicBool = AtomicBool::new(false);
static SAID_CHUNKED: AtomicBool = AtomicBool::new(false);

/// How many body bytes `req` needs read before its server is picked (0: none).
pub(crate) fn wanted(req: &Proxied) -> usize {
    let Affinity::SessionId(sid) = &req.upstream.affinity else {
        return 0;
    };
    if !sid.read.iter().any(|c| matches!(c, IdCarrier::Form(_))) || !is_urlencoded(&req.head) {
        return 0;
    }
    match req.head.body {
        BodyKind::Length(n) if n > 0 && n <= sid.form_max as u64 => n as usize,
        BodyKind::Length(0) | BodyKind::None => 0,
        BodyKind::Length(n) => {
            if !SAID_OVER.swap(true, Ordering::Relaxed) {
                log::info!(
                    "upstream {}: a form body of {n} bytes is over session_form_max_bytes \
                     ({}): not read for a session id, balanced as a new session (said once)",
                    req.upstream.name(),
                    sid.form_max
                );
            }
            0
        }
        _ => {
            if !SAID_CHUNKED.swap(true, Ordering::Relaxed) {
                log::info!(
                    "upstream {}: a chunked form body is not read for a session id: \
                     balanced as a new session (said once)",
                    req.upstream.name()
                );
            }
            0
        }
    }
}

/// `Content-Type: application/x-www-form-urlencoded` (any parameters; multipart is not).
fn is_urlencoded(head: &RequestHead) -> bool {
    head.header("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The raw (not decoded) value of field `name` in a urlencoded body.
pub(crate) fn field<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The body with the first field `name=value` written `name=new` (the other bytes as
/// they are).
pub(crate) fn replace_field(body: &[u8], name: &str, value: &str, new: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let mut at = 0;
    for pair in text.split('&') {
        if pair.split_once('=') == Some((name, value)) {
            let mut out = String::with_capacity(text.len());
            out.push_str(&text[..at]);
            out.push_str(name);
            out.push('=');
            out.push_str(new);
            out.push_str(&text[at + pair.len()..]);
            return Some(Bytes::from(out));
        }
        at += pair.len() + 1;
    }
    None
}

/// HTTP/1.1, phase 6½: read the form body first when the affinity needs it, then pick.
pub(super) fn read(c: &mut Conn, cx: &mut Cx<'_>, req: Proxied) -> State {
    gather(c, cx, req, true)
}

/// HTTP/1.1: more client bytes while the form is read.
pub(super) fn readable(c: &mut Conn, cx: &mut Cx<'_>, req: Box<Proxied>) -> State {
    gather(c, cx, *req, false)
}

fn gather(c: &mut Conn, cx: &mut Cx<'_>, mut req: Proxied, first: bool) -> State {
    let need = wanted(&req);
    if need == 0 {
        return phases::pick(c, cx, req, None);
    }
    c.gather(cx);
    if c.buf.len() >= need {
        req.form = Some(Bytes::copy_from_slice(&c.buf[..need]));
        return phases::pick(c, cx, req, None);
    }
    if first && req.head.expect_continue {
        // The client waits for a word before it sends the body that tether must read
        // before any upstream is asked: say it (as nginx does when it reads a body). A
        // short pipe, retired once written, long before the answer's pipe opens.
        let opts = PipeOpts {
            fin: false,
            ..PipeOpts::default()
        };
        let p = cx.pipe_with(Source::Session, Sink::Conn(c.client), opts);
        cx.push(p, Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        cx.end(p);
    }
    State::ReadingForm(Box::new(req))
}

/// HTTP/1.1: the request goes on with the body `new` instead of the `old_len` bytes read.
pub(super) fn splice(buf: &mut BytesMut, old_len: usize, new: &[u8]) {
    let rest = buf.split_off(old_len.min(buf.len()));
    buf.clear();
    buf.extend_from_slice(new);
    buf.extend_from_slice(&rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_and_replaced_whole() {
        let body = b"OPERATION=GETMAP&SESSIONX=1&SESSION=T.abc&LOCALE=en";
        assert_eq!(field(body, "SESSION"), Some("T.abc"));
        assert_eq!(field(body, "SESSIO"), None);
        let new = replace_field(body, "SESSION", "T.abc", "abc");
        assert_eq!(
            new.as_deref(),
            Some(&b"OPERATION=GETMAP&SESSIONX=1&SESSION=abc&LOCALE=en"[..])
        );
        let first = replace_field(b"SESSION=T.x", "SESSION", "T.x", "x");
        assert_eq!(first.as_deref(), Some(&b"SESSION=x"[..]));
        assert_eq!(replace_field(b"a=1", "SESSION", "T.x", "x"), None);
        let mut buf = BytesMut::from(&b"SESSION=T.x"[..]);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        splice(&mut buf, 11, b"SESSION=x");
        assert_eq!(&buf[..], b"SESSION=xGET / HTTP/1.1\r\n");
    }
}
