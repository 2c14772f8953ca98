//! Bodies the session relays itself (a chunked request body, a response body it cannot hand
//! straight from the upstream to the client): how each ends (`Relay`), and the copy from a
//! pipe (or bytes held back) into another pipe, as far as that one has room.

use bytes::{Bytes, BytesMut};
use tether_core::{Cx, PipeId};
use tether_http::{BodyKind, ChunkedScanner, HttpError};

/// How a body relayed through the session ends.
pub(super) enum Relay {
    Chunked(ChunkedScanner),
    Count(u64),
    UntilClose,
}

impl Relay {
    /// The relay of a response body framed as `body`.
    pub fn of(body: BodyKind) -> Relay {
        match body {
            BodyKind::None => Relay::Count(0),
            BodyKind::Length(n) => Relay::Count(n),
            BodyKind::Chunked => Relay::Chunked(ChunkedScanner::new()),
            BodyKind::UntilClose => Relay::UntilClose,
        }
    }

    /// A chunked body longer than `max` so far.
    pub fn over(&self, max: Option<u64>) -> bool {
        matches!((self, max), (Relay::Chunked(sc), Some(max)) if sc.body_len() > max)
    }
}

/// Move a relayed body from `pending` and then pipe `from` into pipe `to`, as far as `to`
/// has room. True when the body is complete; bytes after its end stay in `pending`.
pub(super) fn relay(
    cx: &mut Cx<'_>,
    how: &mut Relay,
    pending: &mut BytesMut,
    from: Option<PipeId>,
    to: PipeId,
) -> Result<bool, HttpError> {
    loop {
        if !pending.is_empty() {
            let (n, done) = measure(how, pending)?;
            if n > 0 {
                cx.push(to, pending.split_to(n).freeze());
            }
            if done {
                return Ok(true);
            }
        }
        if cx.is_full(to) {
            return Ok(false);
        }
        let Some(b) = from.and_then(|p| cx.take(p)) else {
            return Ok(false);
        };
        let (n, done) = measure(how, &b)?;
        cx.push(to, b.slice(..n));
        if n < b.len() {
            pending.extend_from_slice(&b[n..]);
        }
        if done {
            return Ok(true);
        }
    }
}

/// [`relay`], with `lead` (bytes read with the head, not in `pending`) first: what belongs to
/// the body goes to `to` as a slice of it, without a copy into `pending`.
pub(super) fn relay_from(
    cx: &mut Cx<'_>,
    how: &mut Relay,
    lead: Bytes,
    pending: &mut BytesMut,
    from: Option<PipeId>,
    to: PipeId,
) -> Result<bool, HttpError> {
    if !lead.is_empty() {
        if !pending.is_empty() {
            pending.extend_from_slice(&lead); // (after what waits: keep the order)
        } else {
            let (n, done) = measure(how, &lead)?;
            if n > 0 {
                cx.push(to, lead.slice(..n));
            }
            if n < lead.len() {
                pending.extend_from_slice(&lead[n..]);
            }
            if done {
                return Ok(true);
            }
        }
    }
    relay(cx, how, pending, from, to)
}

/// How many of `data` belong to the body, and whether it ends there.
fn measure(how: &mut Relay, data: &[u8]) -> Result<(usize, bool), HttpError> {
    match how {
        Relay::Chunked(sc) => sc.scan(data),
        Relay::Count(left) => {
            let n = (*left).min(data.len() as u64);
            *left -= n;
            Ok((n as usize, *left == 0))
        }
        Relay::UntilClose => Ok((data.len(), false)),
    }
}
