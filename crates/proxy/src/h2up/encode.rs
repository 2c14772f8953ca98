//! Compression of answers from HTTP/2 upstreams (`encode` on the route), for HTTP/1.1 and
//! HTTP/2 clients alike, with the same policy, head edits and streaming `Compressor` as an
//! HTTP/1.1 upstream's answers get (`http/encode.rs`): the answer's header list is edited
//! (`rewrite_fields`), its DATA fed to the compressor as it comes, what was fed flushed
//! after each batch of the server's frames, the end written when the server's stream ends.

use std::sync::Arc;

use bytes::Bytes;
use tether_compress::{AnswerFacts, Policy};

use crate::http::encode::{self as encoding, Compressor};
use crate::http::phases::Proxied;

/// What a call keeps of its request to decide on its answer's compression.
pub(crate) struct CallEncode {
    policy: Arc<Policy>,
    method: Bytes,
    accept_encoding: Option<Bytes>,
    range: bool,
}

impl CallEncode {
    /// `None` when the route does not compress.
    pub fn of(req: &Proxied) -> Option<Box<CallEncode>> {
        let policy = req.encode.clone()?;
        Some(Box::new(CallEncode {
            policy,
            method: Bytes::copy_from_slice(req.head.method_str().as_bytes()),
            accept_encoding: req
                .head
                .header("accept-encoding")
                .map(Bytes::copy_from_slice),
            range: req.head.header("range").is_some(),
        }))
    }

    /// The answer `status` with `fields` (edited here when the policy says so): its
    /// compressor, when it is compressed. `chunked`: the client gets HTTP/1.1 chunks.
    pub fn start(
        &self,
        status: u16,
        fields: &mut Vec<(Bytes, Bytes)>,
        chunked: bool,
        listen: &dyn std::fmt::Display,
    ) -> Option<Box<Compressor>> {
        let field = |name: &str| {
            (fields.iter())
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| &v[..])
        };
        let facts = AnswerFacts {
            method: &self.method,
            accept_encoding: self.accept_encoding.as_deref(),
            range: self.range,
            status,
            content_type: field("content-type"),
            content_length: field("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()),
            content_encoding: field("content-encoding"),
            cache_control: field("cache-control"),
        };
        let mut plan = encoding::plan_of(&self.policy, &facts);
        let mut z = None;
        if let Some(coding) = plan.coding {
            let body = tether_http::BodyKind::UntilClose; // DATA frames: no framing to undo
            match Compressor::new(&self.policy, coding, body, chunked) {
                Ok(c) => z = Some(Box::new(c)),
                Err(e) => {
                    log::warn!("{listen}: no {coding} encoder: {e}");
                    plan.coding = None;
                }
            }
        }
        if !plan.is_noop() {
            encoding::rewrite_fields(fields, &plan, chunked);
        }
        z
    }
}
