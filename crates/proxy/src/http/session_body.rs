//! Ids in the answer's body (`[upstream.session_body]`): MapGuide's `CREATESESSION` answers
//! the new session id as its whole `text/plain` body. For a request the table names
//! (`when`: query parameters or urlencoded form fields; `path`: a prefix), `Pick::tag_body`
//! is set; when the answer's head arrives, a body with a `Content-Length` up to `max_bytes`
//! (default 4 KiB) and no `Content-Encoding` is held until whole (`hold`), the id found in
//! it (the whole body, a regex's first capture or a JSON pointer) is written
//! `<tag>.<id>` (`rewrite`) and the `Content-Length` corrected. Anything else streams
//! through untouched, with a log line once per reason. Shared by HTTP/1.1 (`proxy.rs`) and
//! HTTP/2 (`h2/upstream.rs`).

use std::sync::atomic::{AtomicBool, Ordering};

use tether_config::spec::{BodyFind, BodyTagSpec};
use tether_http::{BodyKind, RequestHead, ResponseHead};

/// The checked `session_body`, with its regex built.
pub struct BodyTag {
    when: Vec<(String, String)>,
    path: Option<String>,
    find: Find,
    max_bytes: usize,
    /// Reasons already logged: over the limit, compressed, not a length, no id found.
    said: [AtomicBool; 4],
}

enum Find {
    Whole,
    Regex(regex::Regex),
    Pointer(String),
}

/// What to do with an answer whose body may hold a new id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Stream it through untouched.
    Pass,
    /// Wait for more bytes: the body is not whole yet.
    Wait,
    /// The whole body (this many bytes) is buffered: rewrite it.
    Ready(usize),
}

impl BodyTag {
    pub fn build(spec: &BodyTagSpec) -> Result<BodyTag, String> {
        let find = match &spec.find {
            BodyFind::Whole => Find::Whole,
            BodyFind::Regex(r) => Find::Regex(regex::Regex::new(r).map_err(|e| e.to_string())?),
            BodyFind::Pointer(p) => Find::Pointer(p.clone()),
        };
        Ok(BodyTag {
            when: spec.when.clone(),
            path: spec.path.clone(),
            find,
            max_bytes: spec.max_bytes,
            said: Default::default(),
        })
    }

    /// Whether the answer to `head` (with its urlencoded `form`, if read) may hold a new id.
    pub(crate) fn matches(&self, head: &RequestHead, form: Option<&[u8]>) -> bool {
        if let Some(p) = &self.path {
            if !head.path().starts_with(p.as_str()) {
                return false;
            }
        }
        let query = head.target().split_once('?').map_or("", |(_, q)| q);
        let form = form.and_then(|f| std::str::from_utf8(f).ok()).unwrap_or("");
        self.when.iter().all(|(name, value)| {
            [query, form].iter().any(|text| {
                text.split('&').any(|pair| {
                    pair.split_once('=').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case(value)
                    })
                })
            })
        })
    }

    fn say_once(&self, i: usize, what: impl FnOnce() -> String) {
        if !self.said[i].swap(true, Ordering::Relaxed) {
            log::info!("{} (said once)", what());
        }
    }

    /// For the answer `resp` with `buffered` body bytes read so far: pass, wait or rewrite.
    pub(crate) fn hold(&self, upstream: &str, resp: &ResponseHead, buffered: usize) -> Hold {
        if !(200..300).contains(&resp.status) {
            return Hold::Pass;
        }
        if resp
            .header("content-encoding")
            .is_some_and(|v| !v.eq_ignore_ascii_case(b"identity"))
        {
            self.say_once(1, || {
                format!("upstream {upstream}: a compressed answer's body is not searched for a session id")
            });
            return Hold::Pass;
        }
        match resp.body {
            BodyKind::Length(n) if n as usize > self.max_bytes => {
                self.say_once(0, || {
                    format!(
                        "upstream {upstream}: an answer of {n} bytes is over session_body.max_bytes ({}): \
                         not searched for a session id",
                        self.max_bytes
                    )
                });
                Hold::Pass
            }
            BodyKind::Length(0) | BodyKind::None => Hold::Pass,
            BodyKind::Length(n) if buffered < n as usize => Hold::Wait,
            BodyKind::Length(n) => Hold::Ready(n as usize),
            _ => {
                self.say_once(2, || {
                    format!(
                        "upstream {upstream}: an answer without a Content-Length (chunked or until close) \
                         is not searched for a session id"
                    )
                });
                Hold::Pass
            }
        }
    }

    /// `body` with its session id written by `tag` (which gets the id and answers the
    /// tagged id); `None` when no id is found (then the body goes as it is).
    pub(crate) fn rewrite(
        &self,
        upstream: &str,
        body: &[u8],
        tag: impl Fn(&str) -> String,
    ) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(body).ok();
        if let (Find::Pointer(p), Some(text)) = (&self.find, text) {
            let rewritten = pointer_rewrite(text, p, &tag);
            if rewritten.is_none() {
                self.say_once(3, || {
                    format!("upstream {upstream}: a JSON answer named by session_body has no string at {p}")
                });
            }
            return rewritten;
        }
        let found = text.and_then(|text| self.locate(text));
        let Some((start, end)) = found.filter(|(s, e)| s < e) else {
            self.say_once(3, || {
                format!("upstream {upstream}: an answer named by session_body holds no session id")
            });
            return None;
        };
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(&body[..start]);
        // `locate` gives char boundaries of valid UTF-8.
        let id = std::str::from_utf8(&body[start..end]).ok()?;
        out.extend_from_slice(tag(id).as_bytes());
        out.extend_from_slice(&body[end..]);
        Some(out)
    }

    /// Where the id is in `text`: a byte range.
    fn locate(&self, text: &str) -> Option<(usize, usize)> {
        match &self.find {
            Find::Whole => {
                let trimmed = text.trim();
                let start = text.len() - text.trim_start().len();
                Some((start, start + trimmed.len()))
            }
            Find::Regex(re) => {
                let m = re.captures(text)?.get(1)?;
                Some((m.start(), m.end()))
            }
            Find::Pointer(_) => None,
        }
    }
}

/// The JSON document `text` with the string at pointer `p` tagged, written again (compact).
fn pointer_rewrite(text: &str, p: &str, tag: &impl Fn(&str) -> String) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let slot = doc.pointer_mut(p)?;
    let id = slot.as_str()?.to_string();
    if id.is_empty() {
        return None;
    }
    *slot = serde_json::Value::String(tag(&id));
    serde_json::to_vec(&doc).ok()
}

/// `Content-Length: n` for the head edits (`Edits::replace`).
pub(crate) fn length_edit(old: &[u8], new_len: usize) -> (String, Vec<u8>, Vec<u8>) {
    (
        "content-length".into(),
        old.to_vec(),
        new_len.to_string().into_bytes(),
    )
}

/// An answer head arrived for a request whose answer may hold a new id (`Pick::tag_body`):
/// `buf` holds the upstream's bytes, the body from `offset` on. False: wait for more of the
/// body. True: go on, with the body rewritten in `buf`, `resp.body` and the
/// `Content-Length` edit in `pick.response` when an id was tagged. Shared by HTTP/1.1
/// and HTTP/2.
pub(crate) fn answer(
    up: &crate::upstream::Upstream,
    pick: &mut super::affinity::Pick,
    resp: &mut ResponseHead,
    buf: &mut bytes::BytesMut,
    offset: usize,
) -> bool {
    let crate::upstream::Affinity::SessionId(sid) = &up.affinity else {
        return true;
    };
    let Some(tag) = &sid.body else { return true };
    let n = match tag.hold(up.name(), resp, buf.len().saturating_sub(offset)) {
        Hold::Wait => return false,
        Hold::Pass => {
            pick.tag_body = false;
            return true;
        }
        Hold::Ready(n) => n,
    };
    pick.tag_body = false;
    let server = pick.server.clone();
    let body = &buf[offset..offset + n];
    let Some(new) = tag.rewrite(up.name(), body, |id| sid.sealer.tag_value(server.id(), id)) else {
        return true;
    };
    if let Some(old) = resp.header("content-length") {
        pick.response.replace.push(length_edit(old, new.len()));
    }
    let rest = buf.split_off(offset + n);
    buf.truncate(offset);
    buf.extend_from_slice(&new);
    buf.extend_from_slice(&rest);
    resp.body = BodyKind::Length(new.len() as u64);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(find: BodyFind) -> BodyTag {
        BodyTag::build(&BodyTagSpec {
            when: vec![("OPERATION".into(), "CREATESESSION".into())],
            path: None,
            find,
            max_bytes: 4096,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn whole_regex_and_pointer_bodies() {
        let t = |id: &str| format!("TAG.{id}");
        let whole = tag(BodyFind::Whole);
        assert_eq!(
            whole.rewrite("u", b"abc-123_en\r\n", t).as_deref(),
            Some(&b"TAG.abc-123_en\r\n"[..])
        );
        assert_eq!(whole.rewrite("u", b"  \n", t), None);
        let re = tag(BodyFind::Regex("<id>([^<]+)</id>".into()));
        assert_eq!(
            re.rewrite("u", b"<s><id>x1</id></s>", t).as_deref(),
            Some(&b"<s><id>TAG.x1</id></s>"[..])
        );
        let ptr = tag(BodyFind::Pointer("/session/id".into()));
        assert_eq!(
            ptr.rewrite("u", br#"{"name": "x1", "session": {"id": "x1"}}"#, t)
                .as_deref(),
            Some(&br#"{"name":"x1","session":{"id":"TAG.x1"}}"#[..])
        );
    }
}
