//! tether-http: HTTP/1.1 heads and body framing. Pure: no sockets.
//!
//! The proxy hands this crate the bytes it has read and gets back either a parsed head, a
//! request to read more, or a refusal carrying the status to answer with:
//!
//! - [`parse_request`] (`request.rs`) reads a client's request head into a [`RequestHead`]:
//!   method, target, version, how the body is framed ([`BodyKind`]), keep-alive, `Expect`,
//!   `Upgrade`; it refuses anything two HTTP parsers could read differently (smuggling).
//! - [`parse_response`] (`response.rs`) reads a backend's response head into a
//!   [`ResponseHead`] and applies RFC 9112 §6.3 to frame its body; anything untrustworthy is
//!   a `502`.
//! - [`ChunkedScanner`] (`chunked.rs`) finds where a chunked body ends while the proxy
//!   forwards it untouched; [`ChunkedDecoder`] also extracts the data.
//! - `headers.rs`: [`is_hop_by_hop`], [`connection_tokens`], [`write_header`] for rewriting
//!   heads.
//! - [`HttpError`] (`error.rs`): a refusal, as a status and a short reason.
//!
//! Heads keep their raw bytes (one `Bytes`) plus spans into them (`head.rs`); the framing
//! fields are read in one pass (`framing.rs`). Limits come from [`Limits`].
//!
//! ```
//! use tether_http::{parse_request, BodyKind, ChunkedScanner, Limits, Parsed};
//!
//! let buf = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET";
//! let head = match parse_request(buf, &Limits::default()) {
//!     Ok(Parsed::Complete(head)) => head,
//!     Ok(Parsed::Partial) => return, // read more, call again with all the bytes
//!     Err(e) => panic!("answer {} ({})", e.status, e.reason),
//! };
//! assert_eq!((head.path(), head.host(), head.body), ("/up", Some("a"), BodyKind::Chunked));
//! let mut body = ChunkedScanner::new();
//! let (n, done) = body.scan(&buf[head.len()..]).unwrap();
//! assert!(done);
//! assert_eq!(&buf[head.len() + n..], b"GET"); // the next request starts here
//! ```

mod chunked;
mod error;
mod framing;
mod head;
mod headers;
mod html;
mod name;
pub mod reply;
mod request;
mod response;
mod scan;

#[cfg(test)]
mod tests;

pub use chunked::{ChunkedDecoder, ChunkedScanner, MAX_EXTENSIONS, MAX_TRAILERS};
pub use error::HttpError;
pub use head::{BodyKind, FieldLine, Limits, Parsed, Version};
pub use headers::{connection_tokens, is_hop_by_hop, write_header};
pub use html::html_escape;
pub use name::LowerName;
pub use request::{parse_request, request_from_parts, Method, RequestHead};
pub use response::{parse_response, parse_response_bytes, ResponseHead};
