//! Table-driven tests of the public API: malformed and good requests, response framing,
//! chunked bodies split every way.

mod chunked;
mod from_parts;
mod requests;
mod responses;
mod scan_diff;
