//! tether-files: the file module in eXpServer's sense. From a parsed request and a root
//! directory to a reply — a head (with any small body inline) and, for a file body, the
//! range of an open file to stream after it. It knows nothing of sessions or sockets: the
//! HTTP/1.1 and HTTP/2 sessions (`tether-proxy`) call [`static_files::serve`] and send what
//! it answers.
//!
//! - `paths`: a request path to a file under a root (normalised, confined, symlinks
//!   checked), MIME types;
//! - `kept_files`: small files kept in memory per root while they stay the same version;
//! - `listing`: the HTML listing of a directory without an index file;
//! - `static_files`: one request, in order — method, resolve, listing, validators, Range,
//!   gzip — and the options of a files route ([`FileOptions`]).
//!
//! Imports go one way: `static_files` → `listing` → `paths` → `kept_files`.

pub mod kept_files;
pub mod listing;
pub mod paths;
pub mod static_files;

pub use static_files::FileOptions;

/// File bodies up to this size are read and sent with the head (one write); bigger ones go
/// out with `sendfile(2)` after it. Measured with `wrk -t1 -c32` on loopback (2 cores): inline
/// is ~25-45% more requests/s for 1, 16 and 32 KiB files; at 64-256 KiB the two are within
/// noise, so sendfile (no copy, no buffer) takes over there.
pub const INLINE_MAX: u64 = 32 << 10;
