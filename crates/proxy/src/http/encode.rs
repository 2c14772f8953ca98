//! Compression of proxied answers (`encode` on a server or route), shared by HTTP/1.1
//! (`proxy.rs`) and HTTP/2 (`h2/upstream.rs`): tether-compress's `Policy` decides from the
//! request and response heads (`plan`), the client's response head is edited
//! (`rewrite_head`: `Content-Encoding`, `Vary`, a weak `ETag`, no `Content-Length` /
//! `Accept-Ranges`, chunked for HTTP/1.1), and the body is streamed through an `Encoder`
//! (`Compressor`): de-framed from the upstream, compressed, framed again for the client
//! (chunked for HTTP/1.1, raw for HTTP/2 DATA frames and HTTP/1.0), flushed whenever the
//! upstream has nothing more to read right now, so the first compressed byte leaves before
//! the backend's last and the encoder holds its window, never the body.

use std::io;

use bytes::{Bytes, BytesMut};
use tether_compress::{vary_with_accept_encoding, weak_etag, AnswerFacts, Coding, Policy};
use tether_core::{Cx, PipeId};
use tether_http::{BodyKind, ChunkedDecoder, RequestHead, ResponseHead};

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Compress with this coding.
    pub coding: Option<Coding>,
    /// Add `Accept-Encoding` to `Vary`.
    pub vary: bool,
}

impl Plan {
    /// Nothing to change.
    pub fn is_noop(&self) -> bool {
        self.coding.is_none() && !self.vary
    }
}

/// The policy's decision for `resp`, the answer to `req`.
pub(crate) fn plan(policy: &Policy, req: &RequestHead, resp: &ResponseHead) -> Plan {
    let facts = AnswerFacts {
        method: req.method_str().as_bytes(),
        accept_encoding: req.header("accept-encoding"),
        range: req.header("range").is_some(),
        status: resp.status,
        content_type: resp.header("content-type"),
        content_length: match resp.body {
            BodyKind::Length(n) => Some(n),
            // A HEAD's answer has no body but says the length of the GET's.
            BodyKind::None => resp
                .header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()),
            _ => None,
        },
        content_encoding: resp.header("content-encoding"),
        cache_control: resp.header("cache-control"),
    };
    plan_of(policy, &facts)
}

/// The policy's decision for an answer described by `facts`.
pub(crate) fn plan_of(policy: &Policy, facts: &AnswerFacts<'_>) -> Plan {
    Plan {
        coding: policy.check(facts).ok(),
        vary: policy.varies(facts),
    }
}

/// `head` (an HTTP/1.1 response head as tether sends it, ending in a blank line) edited
/// for `plan`. `chunked`: the compressed body goes chunked (HTTP/1.1 clients).
pub(crate) fn rewrite_head(head: &[u8], plan: &Plan, chunked: bool) -> BytesMut {
    let mut out = BytesMut::with_capacity(head.len() + 64);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    if let Some(status) = lines.next() {
        out.extend_from_slice(status);
        out.extend_from_slice(b"\r\n");
    }
    let fields: Vec<(&[u8], &[u8])> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            Some((&l[..colon], l[colon + 1..].trim_ascii()))
        })
        .collect();
    edit_fields(&fields, plan, chunked, |name, value| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    });
    out.extend_from_slice(b"\r\n");
    out
}

/// An answer's header list (from an HTTP/2 upstream, names lowercase) edited for `plan`.
pub(crate) fn rewrite_fields(fields: &mut Vec<(Bytes, Bytes)>, plan: &Plan, chunked: bool) {
    let old = std::mem::take(fields);
    let list: Vec<(&[u8], &[u8])> = old.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    edit_fields(&list, plan, chunked, |name, value| {
        fields.push((
            Bytes::from(name.to_ascii_lowercase()),
            Bytes::copy_from_slice(value),
        ))
    });
}

/// The fields of an answer as `plan` has them: `Vary` joined with `Accept-Encoding`; when
/// compressing, no `Content-Length`, `Accept-Ranges`, `Transfer-Encoding` or old
/// `Content-Encoding`, a weak `ETag`, and `Content-Encoding` (and `Transfer-Encoding:
/// chunked` when `chunked`) added. Pseudo fields pass as they are.
fn edit_fields(
    fields: &[(&[u8], &[u8])],
    plan: &Plan,
    chunked: bool,
    mut write: impl FnMut(&[u8], &[u8]),
) {
    let is = |name: &[u8], what: &str| name.eq_ignore_ascii_case(what.as_bytes());
    // Vary: every listed value joined, with Accept-Encoding added when missing.
    let mut new_vary = None;
    if plan.vary {
        let old: Vec<&[u8]> = fields
            .iter()
            .filter(|(n, _)| is(n, "vary"))
            .map(|(_, v)| *v)
            .collect();
        let joined = old.join(&b", "[..]);
        new_vary = vary_with_accept_encoding((!old.is_empty()).then_some(&joined[..]));
    }
    for (name, value) in fields {
        if new_vary.is_some() && is(name, "vary") {
            continue;
        }
        if plan.coding.is_some() {
            if is(name, "content-length")
                || is(name, "accept-ranges")
                || is(name, "transfer-encoding")
                || is(name, "content-encoding")
            {
                continue;
            }
            if is(name, "etag") {
                write(b"ETag", &weak_etag(value));
                continue;
            }
        }
        write(name, value);
    }
    if let Some(v) = &new_vary {
        write(b"Vary", v);
    }
    if let Some(c) = plan.coding {
        write(b"Content-Encoding", c.name().as_bytes());
        if chunked {
            write(b"Transfer-Encoding", b"chunked");
        }
    }
}

/// How the upstream's body ends (it is de-framed before it is compressed).
enum Framing {
    Count(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// One compressed answer on its way: the upstream's body in, the client's bytes out.
pub(crate) struct Compressor {
    enc: Option<tether_compress::Encoder>,
    framing: Framing,
    /// Frame the output as chunks (HTTP/1.1).
    chunked: bool,
    /// Input fed since the last flush.
    fed: bool,
    out: BytesMut,
    body: Vec<u8>,
}

/// One step of a compressed body: how many upstream bytes were the body's, whether it is
/// complete (then `out` ends the answer), and the bytes for the client.
pub(crate) struct Step {
    pub used: usize,
    pub done: bool,
    pub out: Bytes,
}

impl Compressor {
    /// A compressor for an upstream body framed as `body`; `chunked`: HTTP/1.1 chunks out.
    pub fn new(
        policy: &Policy,
        coding: Coding,
        body: BodyKind,
        chunked: bool,
    ) -> io::Result<Compressor> {
        let framing = match body {
            BodyKind::None => Framing::Count(0),
            BodyKind::Length(n) => Framing::Count(n),
            BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
            BodyKind::UntilClose => Framing::UntilClose,
        };
        Ok(Compressor {
            enc: Some(policy.encoder(coding)?),
            framing,
            chunked,
            fed: false,
            out: BytesMut::new(),
            body: Vec::new(),
        })
    }

    /// Compress the body bytes at the start of `data`.
    pub fn feed(&mut self, data: &[u8]) -> io::Result<Step> {
        // A counted or close-delimited body is fed straight from `data`; only chunked
        // framing needs the de-chunked copy in `body`.
        let (used, done, direct) = match &mut self.framing {
            Framing::Count(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                (n, *left == 0, true)
            }
            Framing::Chunked(dec) => {
                let (used, done) = dec
                    .decode(data, &mut self.body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.reason))?;
                (used, done, false)
            }
            Framing::UntilClose => (data.len(), false, true),
        };
        let input = if direct {
            &data[..used]
        } else {
            &self.body[..]
        };
        if !input.is_empty() {
            if let Some(enc) = self.enc.as_mut() {
                enc.feed(input, &mut self.out)?;
                self.fed = true;
            }
        }
        self.body.clear();
        if done {
            return Ok(Step {
                used,
                done,
                out: self.finish()?,
            });
        }
        Ok(Step {
            used,
            done,
            out: self.frame(),
        })
    }

    /// What the client can decode of everything fed so far (nothing if nothing was fed
    /// since the last flush).
    pub fn flush(&mut self) -> io::Result<Bytes> {
        if !self.fed {
            return Ok(Bytes::new());
        }
        self.fed = false;
        if let Some(enc) = self.enc.as_mut() {
            enc.flush(&mut self.out)?;
        }
        Ok(self.frame())
    }

    /// The end of the compressed body (and the last chunk).
    pub fn finish(&mut self) -> io::Result<Bytes> {
        let Some(enc) = self.enc.take() else {
            return Ok(Bytes::new());
        };
        enc.finish(&mut self.out)?;
        let mut out = BytesMut::from(&self.frame()[..]);
        if self.chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(out.freeze())
    }

    /// The pending compressed bytes, as a chunk for HTTP/1.1.
    fn frame(&mut self) -> Bytes {
        if self.out.is_empty() {
            return Bytes::new();
        }
        let data = self.out.split().freeze();
        if !self.chunked {
            return data;
        }
        let mut framed = BytesMut::with_capacity(data.len() + 12);
        framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        framed.extend_from_slice(&data);
        framed.extend_from_slice(b"\r\n");
        framed.freeze()
    }
}

/// Move a compressed body from `pending` and then pipe `from` into pipe `to`, as far as
/// `to` has room (HTTP/1.1's `relay::relay` with an encoder between). When `from` has
/// nothing more for now, what was fed is flushed. True when the body is complete; bytes
/// after its end stay in `pending`.
pub(crate) fn relay(
    cx: &mut Cx<'_>,
    z: &mut Compressor,
    pending: &mut BytesMut,
    from: Option<PipeId>,
    to: PipeId,
) -> io::Result<bool> {
    loop {
        if !pending.is_empty() {
            let data = pending.split().freeze();
            let step = z.feed(&data)?;
            push(cx, to, step.out);
            if step.used < data.len() {
                pending.extend_from_slice(&data[step.used..]);
            }
            if step.done {
                return Ok(true);
            }
        }
        if cx.is_full(to) {
            return Ok(false);
        }
        let Some(b) = from.and_then(|p| cx.take(p)) else {
            let out = z.flush()?;
            push(cx, to, out);
            return Ok(false);
        };
        let step = z.feed(&b)?;
        push(cx, to, step.out);
        if step.used < b.len() {
            pending.extend_from_slice(&b[step.used..]);
        }
        if step.done {
            return Ok(true);
        }
    }
}

fn push(cx: &mut Cx<'_>, to: PipeId, b: Bytes) {
    if !b.is_empty() {
        cx.push(to, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_http::{parse_request, parse_response, Limits, Parsed};

    fn req(raw: &str) -> RequestHead {
        match parse_request(raw.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            _ => panic!("{raw}"),
        }
    }

    fn resp(raw: &str, head: bool) -> ResponseHead {
        match parse_response(raw.as_bytes(), head, &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            _ => panic!("{raw}"),
        }
    }

    #[test]
    fn plans() {
        let p = Policy::default();
        let get = req("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n");
        let json =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
        let plan_ = plan(&p, &get, &resp(json, false));
        assert_eq!(plan_.coding, Some(Coding::Gzip));
        assert!(plan_.vary);
        let small =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(plan(&p, &get, &resp(small, false)).coding, None);
        let head = req("HEAD / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n");
        let plan_ = plan(&p, &head, &resp(json, true));
        assert_eq!(plan_.coding, None);
        assert!(plan_.vary);
    }

    #[test]
    fn head_edits() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nETag: \"x\"\r\nAccept-Ranges: bytes\r\nVary: Origin\r\nServer: t\r\n\r\n";
        let plan = Plan {
            coding: Some(Coding::Brotli),
            vary: true,
        };
        let out = rewrite_head(head, &plan, true);
        let s = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: W/\"x\"\r\nServer: t\r\nVary: Origin, Accept-Encoding\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let only_vary = Plan {
            coding: None,
            vary: true,
        };
        let s = String::from_utf8(rewrite_head(head, &only_vary, true).to_vec()).unwrap();
        assert!(
            s.contains("Content-Length: 9\r\n") && s.contains("Vary: Origin, Accept-Encoding\r\n"),
            "{s}"
        );
    }

    #[test]
    fn chunked_in_chunked_out() {
        let p = Policy::default();
        let mut z = Compressor::new(&p, Coding::Gzip, BodyKind::Chunked, true).unwrap();
        let a = z.feed(b"5\r\nhello\r\n").unwrap();
        assert!(!a.done);
        let f = z.flush().unwrap();
        assert!(f.starts_with(b"") && !f.is_empty());
        let b = z.feed(b"0\r\n\r\nrest").unwrap();
        assert!(b.done);
        assert_eq!(b.used, 5);
        assert!(b.out.ends_with(b"0\r\n\r\n"));
    }
}
