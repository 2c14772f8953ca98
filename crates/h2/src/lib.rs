//! tether-h2: both sides of HTTP/2 (RFC 9113) without I/O, for the core's loop to drive
//! as it drives an HTTP/1.1 session: the server side (`Conn`, for clients) and the client
//! side (`ClientConn`, for upstreams, over TLS with ALPN `h2` or h2c).
//!
//! - `frame.rs`: the frames, checked as a receiver must and written as a server does;
//! - `headers.rs`: header blocks (HPACK decoded by nghttp2's inflater under a size limit), request heads
//!   checked and mapped (cookie crumbs joined), responses encoded;
//! - `stream.rs`: a stream's state and windows, and the per-second limits;
//! - `conn.rs` (with `conn/send.rs`): one connection: preface, SETTINGS, streams, flow
//!   control both ways, resets, GOAWAY, and the guards against the known floods;
//! - `client.rs` (with `client/recv.rs`, `client/send.rs`): one upstream connection: the
//!   preface, stream ids, the server's MAX_CONCURRENT_STREAMS (Busy), flow control both
//!   ways, trailers, resets, GOAWAY with the set of streams to retry, PING keep-alive;
//! - `hpack_enc.rs`: HPACK encoding with a dynamic table (nghttp2's deflater), for requests.
//!
//! A connection error queues its GOAWAY and is returned; a stream error resets that
//! stream and the connection goes on. Nothing here panics on a peer's bytes (both sides
//! are fuzzed: `fuzz/fuzz_targets/h2_frames.rs` for the server side and the frame decoder,
//! `h2_client.rs` for the client side; `tests/client_random_input.rs` feeds the client
//! seeded random input in `cargo test`).

mod client;
mod conn;
mod error;
pub mod frame;
mod headers;
mod hpack_enc;
mod stream;

#[cfg(test)]
mod tests;

pub use client::{ClientConn, ClientEvent, ClientSettings, RequestError, StreamError, StreamId};
pub use conn::{Config, Conn, Event, SendError};
pub use error::{ErrorCode, H2Error};
pub use headers::{encode_fields, encode_response, RequestHead};
pub use hpack_enc::{EncodeError, HeaderEncoder};
