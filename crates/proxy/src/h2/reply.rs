//! What a stream sends back: the response head (every answer tether writes is made by the
//! same code as for HTTP/1.1 — status pages, files, metrics, the upstream's rewritten head
//! — and its HTTP/1.1 bytes are read back into HTTP/2 fields here, so no answer is written
//! twice), and the body waiting for the client's windows (`Out`), refilled from a file
//! (`FileBody`) or from the upstream (`upstream.rs`) only while it holds less than
//! `OUT_HIGH`: a closed window stops the reading (backpressure).

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use tether_http::{parse_response, Limits, Parsed};

/// A stream's body bytes held for the client's windows before its source is read again.
pub(super) const OUT_HIGH: usize = 128 * 1024;
/// One read of a file body.
const FILE_READ: u64 = 64 * 1024;

/// The body bytes of one stream on their way to the client.
#[derive(Default)]
pub(super) struct Out {
    pub queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    pub queued: usize,
    /// The source has no more: END_STREAM once `queue` is out.
    pub end: bool,
    /// Trailers to send after `queue` (they carry the END_STREAM): an HTTP/2 upstream's.
    pub trailers: Option<Vec<(Bytes, Bytes)>>,
    /// END_STREAM (or a reset) went out: nothing more for this stream.
    pub sent_end: bool,
    /// The response head went out.
    pub head_sent: bool,
    /// Since when data waits and the stream's window is 0 (the idle check resets a stream
    /// stalled for the idle timeout).
    pub stalled_since: Option<std::time::Instant>,
}

impl Out {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queued += b.len();
            self.queue.push_back(b);
        }
    }

    /// Room for the source to be read again.
    pub fn wants_more(&self) -> bool {
        self.queued < OUT_HIGH && !self.end
    }
}

/// A file range still to send after the head.
pub(super) struct FileBody {
    pub file: File,
    pub offset: u64,
    pub left: u64,
}

impl FileBody {
    /// Read the file into `out` while it has room.
    pub fn fill(&mut self, out: &mut Out) -> std::io::Result<()> {
        while out.wants_more() && self.left > 0 {
            let mut buf = vec![0u8; self.left.min(FILE_READ) as usize];
            let got = self.file.read_at(&mut buf, self.offset)?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.truncate(got);
            self.offset += got as u64;
            self.left -= got as u64;
            out.push(Bytes::from(buf));
        }
        if self.left == 0 {
            out.end = true;
        }
        Ok(())
    }
}

/// An answer for an HTTP/2 client: a proxied one's header list
/// (`forward::client_response_fields`), or one of tether's own pages, made by the code that
/// answers HTTP/1.1 clients and read back (`read_h1`).
pub(super) struct H1Answer {
    pub status: u16,
    /// Header fields, in order (`tether-h2` drops the connection-specific ones).
    pub fields: Vec<(Bytes, Bytes)>,
    /// Body bytes that came with the head.
    pub body: Bytes,
}

/// Read `bytes` (a status line, fields, a blank line, maybe a body) back; `None` if tether
/// wrote something it cannot read (a bug: the stream is reset).
pub(super) fn read_h1(bytes: Bytes, head_only: bool, limits: &Limits) -> Option<H1Answer> {
    let resp = match parse_response(&bytes, head_only, limits) {
        Ok(Parsed::Complete(r)) => r,
        _ => return None,
    };
    let fields = resp
        .headers()
        .map(|(n, v)| {
            (
                Bytes::copy_from_slice(n.as_bytes()),
                Bytes::copy_from_slice(v),
            )
        })
        .collect();
    let body = if head_only {
        Bytes::new()
    } else {
        bytes.slice(resp.len()..)
    };
    Some(H1Answer {
        status: resp.status,
        fields,
        body,
    })
}

/// Send `answer`'s head on `stream`, its body into `out`; `more`: more body follows (a
/// file, an upstream's).
pub(super) fn send(
    h2: &mut tether_h2::Conn,
    stream: u32,
    answer: H1Answer,
    more: bool,
    out: &mut Out,
) -> bool {
    let fields: Vec<(&[u8], &[u8])> = answer
        .fields
        .iter()
        .map(|(n, v)| (&n[..], &v[..]))
        .collect();
    let end = answer.body.is_empty() && !more;
    if h2
        .send_headers(stream, answer.status, &fields, end)
        .is_err()
    {
        return false;
    }
    out.head_sent = true;
    out.push(answer.body);
    out.end = !more;
    out.sent_end = end;
    true
}
