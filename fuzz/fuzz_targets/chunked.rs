//! `ChunkedScanner` (and `ChunkedDecoder`) on arbitrary bytes: the first two bytes pick two
//! split points; feeding the rest whole, in those three pieces, and (when short) one byte at
//! a time must give the same result; where a body ends, it ends whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_http::{ChunkedDecoder, ChunkedScanner, HttpError};

/// Bytes of the body consumed, whether it is done, and the decoded data; or the error.
fn feed(body: &[u8], pieces: &[usize]) -> Result<(usize, bool, Vec<u8>), HttpError> {
    let mut scanner = ChunkedScanner::new();
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut total = 0;
    let mut at = 0;
    for &len in pieces {
        let piece = &body[at..at + len];
        at += len;
        let (n, done) = scanner.scan(piece)?;
        let decoded = decoder.decode(piece, &mut data)?;
        assert_eq!((n, done), decoded);
        assert_eq!(done, scanner.is_done());
        assert!(n <= piece.len());
        total += n;
        if done {
            assert_eq!(scanner.scan(&body[at..]), Ok((0, true)));
            return Ok((total, true, data));
        }
        assert_eq!(n, piece.len());
    }
    Ok((total, false, data))
}

fuzz_target!(|data: &[u8]| {
    let [a, b, body @ ..] = data else {
        return;
    };
    let whole = feed(body, &[body.len()]);
    let s1 = *a as usize % (body.len() + 1);
    let s2 = s1 + *b as usize % (body.len() - s1 + 1);
    assert_eq!(feed(body, &[s1, s2 - s1, body.len() - s2]), whole);
    if body.len() <= 256 {
        assert_eq!(feed(body, &vec![1; body.len()]), whole);
    }
    if let Ok((n, true, decoded)) = &whole {
        // The body ends at n whatever follows, and not one byte earlier.
        assert_eq!(feed(&body[..*n], &[*n]), Ok((*n, true, decoded.clone())));
        let short = feed(&body[..n - 1], &[n - 1]);
        assert!(matches!(short, Ok((_, false, _))), "{short:?}");
        assert!(decoded.len() < *n);
    }
});
