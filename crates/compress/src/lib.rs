//! tether-compress: compression of proxied answers and static files.
//!
//! - [`negotiate`] (`negotiate.rs`): `Accept-Encoding` q-values → the coding to send.
//! - [`Policy`] (`policy.rs`): whether an answer is compressed (type, length, status,
//!   method, `Range`, `no-transform`, existing encoding) and with which coding.
//! - [`Encoder`] (`encoder.rs`): gzip, brotli or zstd, streamed chunk by chunk with sync
//!   flushes, memory bounded by the window sizes.
//! - [`precompressed`] (`precompressed.rs`): which `.zst`/`.br`/`.gz` sibling of a static
//!   file to serve.
//! - [`vary_with_accept_encoding`], [`weak_etag`] (`headers.rs`): the header edits.
//!
//! Pure: no sockets, no threads, no clock. Every call is bounded CPU work on the caller's
//! thread (see the README for the measured cost per level), so the event loop calls it.

mod coding;
mod encoder;
mod headers;
mod negotiate;
mod policy;
mod precompressed;

pub use coding::Coding;
pub use encoder::{Encoder, BROTLI_LGWIN, ZSTD_WINDOW_LOG};
pub use headers::{vary_with_accept_encoding, weak_etag};
pub use negotiate::negotiate;
pub use policy::{
    AnswerFacts, Levels, Policy, Skip, DEFAULT_MIN_LENGTH, DEFAULT_OFFERED, DEFAULT_TYPES,
};
pub use precompressed::precompressed;
