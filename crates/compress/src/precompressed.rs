//! Static files' precompressed siblings (`app.js.br`, `app.js.zst`, `app.js.gz` beside
//! `app.js`, as nginx's `gzip_static` and Caddy's `precompressed`): which one to serve.

use crate::negotiate::negotiate_where;
use crate::Coding;

/// The sibling to serve for a request whose `Accept-Encoding` is `accepted`:
/// the coding the client weighs highest among those in `offered` (server order breaks
/// ties) for which `available(coding)` is true, i.e. the file `path + coding.suffix()`
/// exists and is a regular file. `None`: serve the plain file (or compress it on the fly).
///
/// `available` is called only for codings the client accepts and that could still win,
/// so the file module may `stat` lazily. The answer then carries
/// `Content-Encoding: <coding.name()>`, the plain file's `Content-Type`, the sibling's
/// length, and `Vary: Accept-Encoding` (also on the plain file's answers).
///
/// ```
/// use tether_compress::{precompressed, Coding::*};
/// let on_disk = |c| c == Brotli || c == Gzip; // app.js.br and app.js.gz exist
/// assert_eq!(precompressed(b"gzip, br, zstd", on_disk, &[Zstd, Brotli, Gzip]), Some(Brotli));
/// assert_eq!(precompressed(b"gzip", on_disk, &[Zstd, Brotli, Gzip]), Some(Gzip));
/// assert_eq!(precompressed(b"zstd", on_disk, &[Zstd, Brotli, Gzip]), None);
/// ```
pub fn precompressed(
    accepted: &[u8],
    available: impl Fn(Coding) -> bool,
    offered: &[Coding],
) -> Option<Coding> {
    negotiate_where(accepted, offered, available)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use Coding::*;

    #[test]
    fn picks_the_best_existing_sibling() {
        let all = [Zstd, Brotli, Gzip];
        let none = |_| false;
        let every = |_| true;
        let gz_only = |c| c == Gzip;
        assert_eq!(precompressed(b"gzip, br, zstd", every, &all), Some(Zstd));
        assert_eq!(precompressed(b"gzip, br, zstd", none, &all), None);
        assert_eq!(precompressed(b"gzip, br, zstd", gz_only, &all), Some(Gzip));
        assert_eq!(precompressed(b"br, zstd", gz_only, &all), None);
        assert_eq!(precompressed(b"gzip;q=0, br", gz_only, &all), None);
        assert_eq!(precompressed(b"gzip, br;q=0.5", every, &all), Some(Gzip));
        assert_eq!(precompressed(b"", every, &all), None);
        // Not offered: never served even if present and accepted.
        assert_eq!(precompressed(b"zstd", every, &[Brotli, Gzip]), None);
    }

    #[test]
    fn asks_only_about_acceptable_codings() {
        let asked = RefCell::new(Vec::new());
        let probe = |c| {
            asked.borrow_mut().push(c);
            true
        };
        assert_eq!(
            precompressed(b"gzip;q=0.5, br", probe, &[Zstd, Brotli, Gzip]),
            Some(Brotli)
        );
        // zstd is not accepted; gzip cannot beat br's weight: one stat only.
        assert_eq!(*asked.borrow(), vec![Brotli]);
    }
}
