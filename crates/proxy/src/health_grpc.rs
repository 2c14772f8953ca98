//! The gRPC health check (`[upstream.health] kind = "grpc"`): one
//! `grpc.health.v1.Health/Check` call per probe over HTTP/2 (h2c with prior knowledge, or
//! inside the pool's TLS), sans I/O: `health.rs` connects, writes [`GrpcProbe::output`],
//! feeds what it reads to [`GrpcProbe::feed`] and records the verdict.
//!
//! The two messages of `grpc/health/v1/health.proto` are written by hand with `prost`'s
//! derive (no `protoc`). Only `SERVING` in an answer with `grpc-status: 0` passes;
//! `NOT_SERVING`, `UNKNOWN`, `SERVICE_UNKNOWN`, any other `grpc-status`, a non-200 head, a
//! reset, a GOAWAY before the answer, a broken frame or message fail (and so does the
//! timeout, which `health.rs` keeps).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tether_h2::{ClientConn, ClientEvent, ClientSettings, StreamId};

/// The method's path.
const PATH: &[u8] = b"/grpc.health.v1.Health/Check";

/// The largest answer read (a HealthCheckResponse is a few bytes).
const MAX_ANSWER: usize = 4096;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

/// Where a probe stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No answer yet.
    Pending,
    /// SERVING.
    Pass,
    /// Anything else, with why (for the debug log).
    Fail(String),
}

/// One check call on one fresh connection.
pub struct GrpcProbe {
    conn: ClientConn,
    id: Option<StreamId>,
    /// The response body (gRPC length-prefixed messages).
    body: BytesMut,
    verdict: Verdict,
}

impl GrpcProbe {
    /// The connection preface, SETTINGS and the whole call (head and body) queued.
    pub fn new(service: &str, authority: &str, tls: bool) -> GrpcProbe {
        let mut conn = ClientConn::new(ClientSettings {
            initial_window: 64 * 1024,
            conn_window: 64 * 1024,
            ..ClientSettings::default()
        });
        let scheme: &[u8] = if tls { b"https" } else { b"http" };
        let fields: [(&[u8], &[u8]); 7] = [
            (b":method", b"POST"),
            (b":scheme", scheme),
            (b":authority", authority.as_bytes()),
            (b":path", PATH),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"tether-health"),
        ];
        let mut verdict = Verdict::Pending;
        let mut id = None;
        match conn.send_request(&fields, false) {
            Ok(i) => {
                let mut msg = request_message(service);
                // 5 + a short name: within the 65,535-byte window a new stream has.
                if conn.send_data(i, &mut msg, true).is_err() || !msg.is_empty() {
                    verdict = Verdict::Fail("request not sent".into());
                }
                id = Some(i);
            }
            Err(e) => verdict = Verdict::Fail(format!("request: {e:?}")),
        }
        GrpcProbe {
            conn,
            id,
            body: BytesMut::new(),
            verdict,
        }
    }

    /// The bytes to write now (the preface and the call first, then acks).
    pub fn output(&mut self) -> Vec<Bytes> {
        self.conn.take_output()
    }

    /// The verdict so far.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Take the server's bytes; write [`GrpcProbe::output`] after.
    pub fn feed(&mut self, bytes: &[u8]) -> &Verdict {
        if self.verdict != Verdict::Pending {
            return &self.verdict;
        }
        let Some(id) = self.id else {
            return &self.verdict;
        };
        for event in self.conn.receive(bytes) {
            let v = match event {
                ClientEvent::Headers {
                    id: i,
                    status,
                    fields,
                    end,
                } if i == id => {
                    if status > 200 {
                        Some(Verdict::Fail(format!("HTTP status {status}")))
                    } else if end {
                        // Trailers-only: the status is in the head.
                        Some(self.trailers(&fields))
                    } else {
                        None
                    }
                }
                ClientEvent::Data { id: i, bytes, end } if i == id => {
                    self.conn.consumed(id, bytes.len());
                    self.body.extend_from_slice(&bytes);
                    if self.body.len() > MAX_ANSWER {
                        Some(Verdict::Fail("answer too large".into()))
                    } else if end {
                        Some(Verdict::Fail("no trailers".into()))
                    } else {
                        None
                    }
                }
                ClientEvent::Trailers { id: i, fields } if i == id => Some(self.trailers(&fields)),
                ClientEvent::Reset { id: i, code, .. } if i == id => {
                    Some(Verdict::Fail(format!("stream reset: {code:?}")))
                }
                ClientEvent::GoAway { retryable, .. } if retryable.contains(&id) => {
                    Some(Verdict::Fail("GOAWAY before the call".into()))
                }
                ClientEvent::Error(e) => Some(Verdict::Fail(format!("HTTP/2: {e:?}"))),
                _ => None,
            };
            if let Some(v) = v {
                self.verdict = v;
                break;
            }
        }
        &self.verdict
    }

    /// The verdict of a call that ended with `fields` as its trailers.
    fn trailers(&self, fields: &[(Bytes, Bytes)]) -> Verdict {
        let status = fields
            .iter()
            .find(|(n, _)| n.as_ref() == b"grpc-status")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        match status.as_deref() {
            Some("0") => {}
            Some(s) => return Verdict::Fail(format!("grpc-status {s}")),
            None => return Verdict::Fail("no grpc-status".into()),
        }
        match answer_status(&self.body) {
            Some(ServingStatus::Serving) => Verdict::Pass,
            Some(other) => Verdict::Fail(format!("{other:?}")),
            None => Verdict::Fail("no HealthCheckResponse".into()),
        }
    }
}

/// `HealthCheckRequest { service }` as one uncompressed gRPC message.
pub fn request_message(service: &str) -> Bytes {
    let msg = HealthCheckRequest {
        service: service.to_string(),
    };
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    // Encoding into a buffer with room for `encoded_len` bytes cannot fail.
    let _ = msg.encode(&mut out);
    out.freeze()
}

/// The serving status of the first message of a response body: `None` if the body is not
/// one whole uncompressed message holding a HealthCheckResponse.
pub fn answer_status(body: &[u8]) -> Option<ServingStatus> {
    let mut b = body;
    if b.len() < 5 || b[0] != 0 {
        return None;
    }
    b.advance(1);
    let len = b.get_u32() as usize;
    let msg = b.get(..len)?;
    let answer = HealthCheckResponse::decode(msg).ok()?;
    // An unknown enum value is UNKNOWN (proto3: unrecognised values are kept as numbers).
    Some(ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = request_message("app.Api");
        assert_eq!(m[0], 0);
        assert_eq!(&m[1..5], &[0, 0, 0, 9]);
        // field 1, wire type 2, length 7, "app.Api"
        assert_eq!(&m[5..], b"\x0a\x07app.Api");
        assert_eq!(request_message("").len(), 5);
        for (bytes, want) in [
            (
                &b"\x00\x00\x00\x00\x02\x08\x01"[..],
                Some(ServingStatus::Serving),
            ),
            (
                &b"\x00\x00\x00\x00\x02\x08\x02"[..],
                Some(ServingStatus::NotServing),
            ),
            (
                &b"\x00\x00\x00\x00\x02\x08\x03"[..],
                Some(ServingStatus::ServiceUnknown),
            ),
            (&b"\x00\x00\x00\x00\x00"[..], Some(ServingStatus::Unknown)),
            (
                &b"\x00\x00\x00\x00\x02\x08\x09"[..],
                Some(ServingStatus::Unknown),
            ),
            (&b"\x01\x00\x00\x00\x02\x08\x01"[..], None),
            (&b"\x00\x00\x00\x00\x05\x08\x01"[..], None),
            (&b"\x00\x00"[..], None),
        ] {
            assert_eq!(answer_status(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn a_probe_queues_preface_and_call() {
        let mut p = GrpcProbe::new("", "127.0.0.1:1", false);
        assert_eq!(p.verdict(), &Verdict::Pending);
        let out: Vec<u8> = p.output().concat();
        assert!(out.starts_with(tether_h2::frame::PREFACE));
        // Garbage from the server fails the probe, never panics.
        let v = p.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n").clone();
        assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
    }
}
