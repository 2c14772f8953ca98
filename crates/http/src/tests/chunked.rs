//! Chunked bodies: every test body fed whole, byte by byte and in random splits must give
//! the same answer.

use crate::{ChunkedDecoder, ChunkedScanner, HttpError, MAX_EXTENSIONS, MAX_TRAILERS};

/// A small deterministic PRNG (xorshift64*), so split points differ per run of the loop but
/// not per run of the suite.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What feeding `input` in the given pieces gives: bytes consumed in all, whether done, the
/// decoded data, or the first error.
fn feed(input: &[u8], pieces: &[usize]) -> Result<(usize, bool, Vec<u8>), HttpError> {
    let mut scanner = ChunkedScanner::new();
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut total = 0;
    let mut at = 0;
    for &len in pieces {
        let piece = &input[at..at + len];
        let (n, done) = scanner.scan(piece)?;
        let (m, done2) = decoder.decode(piece, &mut data)?;
        assert_eq!((n, done), (m, done2), "scanner and decoder agree");
        assert_eq!(done, scanner.is_done());
        assert!(n <= piece.len());
        total += n;
        at += len;
        if done {
            assert_eq!(total, at - len + n);
            // Once done, nothing more is taken.
            assert_eq!(scanner.scan(&input[at..]), Ok((0, true)));
            return Ok((total, true, data));
        }
        assert_eq!(n, piece.len(), "everything is consumed until the end");
    }
    Ok((total, false, data))
}

fn whole(input: &[u8]) -> Vec<usize> {
    vec![input.len()]
}

fn byte_by_byte(input: &[u8]) -> Vec<usize> {
    vec![1; input.len()]
}

fn random_split(input: &[u8], rng: &mut Rng) -> Vec<usize> {
    let mut pieces = Vec::new();
    let mut left = input.len();
    while left > 0 {
        let n = 1 + rng.below(left.min(12));
        pieces.push(n);
        left -= n;
    }
    pieces
}

/// Feed `input` whole, byte by byte and in 50 random splits; all must agree.
fn all_ways(input: &[u8]) -> Result<(usize, bool, Vec<u8>), HttpError> {
    let expected = feed(input, &whole(input));
    assert_eq!(
        feed(input, &byte_by_byte(input)),
        expected,
        "byte by byte: {input:?}"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ input.len() as u64);
    for _ in 0..50 {
        let pieces = random_split(input, &mut rng);
        assert_eq!(
            feed(input, &pieces),
            expected,
            "split {pieces:?}: {input:?}"
        );
    }
    expected
}

#[test]
fn valid_bodies() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (
            b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n",
            b"0123456789abcdefghij",
        ),
        (b"5;ext=1\r\nhello\r\n0;last\r\n\r\n", b"hello"),
        (b"5 ;name=\"q v\"\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\t; a ; b=c\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"0005\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"0000000000000003\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r"),
        (b"0\r\nX-Checksum: abc\r\nY: \r\n\r\n", b""),
        (
            b"2\r\nhi\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n",
            b"hi",
        ),
        (b"0\r\nX:v\xc3\xa9\t\r\n\r\n", b""),
    ];
    for (body, data) in cases {
        let result = all_ways(body);
        assert_eq!(result, Ok((body.len(), true, data.to_vec())), "{body:?}");
    }
}

#[test]
fn bytes_after_the_end_are_not_consumed() {
    let body = b"5\r\nhello\r\n0\r\nT: 1\r\n\r\n";
    let mut input = body.to_vec();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (n, done, data) = all_ways(&input).unwrap();
    assert_eq!((n, done, &data[..]), (body.len(), true, &b"hello"[..]));
    // Even a second body right behind is left alone.
    let mut two = body.to_vec();
    two.extend_from_slice(body);
    assert_eq!(all_ways(&two).map(|r| r.0), Ok(body.len()));
}

#[test]
fn incomplete_bodies_are_not_done() {
    for body in [
        &b""[..],
        b"5",
        b"5\r\n",
        b"5\r\nhel",
        b"5\r\nhello\r\n",
        b"5\r\nhello\r\n0\r\n",
        b"5\r\nhello\r\n0\r\nX: 1\r\n",
        b"0\r\n\r",
        b"ffffffffffffffff\r\nabc",
    ] {
        assert_eq!(
            all_ways(body),
            Ok((body.len(), false, body_data(body))),
            "{body:?}"
        );
    }
}

/// The data bytes of the incomplete bodies above.
fn body_data(body: &[u8]) -> Vec<u8> {
    match body {
        b"5\r\nhel" => b"hel".to_vec(),
        b"ffffffffffffffff\r\nabc" => b"abc".to_vec(),
        _ if body.starts_with(b"5\r\nhello") => b"hello".to_vec(),
        _ => Vec::new(),
    }
}

#[test]
fn malformed_bodies_are_400() {
    let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_EXTENSIONS));
    let many_ext = format!(
        "{}0\r\n\r\n",
        "1;abcdefghij\r\na\r\n".repeat(MAX_EXTENSIONS / 10)
    );
    let long_trailers = format!(
        "0\r\n{}\r\n",
        "X-Trailer: 12345678\r\n".repeat(MAX_TRAILERS / 20 + 1)
    );
    let cases: Vec<Vec<u8>> = vec![
        b"\r\n".to_vec(),
        b";ext\r\n".to_vec(),
        b"g\r\n".to_vec(),
        b"-5\r\n".to_vec(),
        b"+5\r\n".to_vec(),
        b"0x5\r\n".to_vec(),
        b" 5\r\n".to_vec(),
        b"5 \r\nhello\r\n0\r\n\r\n".to_vec(),
        b"5 x\r\n".to_vec(),
        b"5\nhello\r\n0\r\n\r\n".to_vec(),
        b"5\rhello".to_vec(),
        b"5\r\nhelloX\r\n".to_vec(),
        b"5\r\nhello\n0\r\n\r\n".to_vec(),
        b"5\r\nhello\r0\r\n\r\n".to_vec(),
        b"5\r\nhello0\r\n\r\n".to_vec(),
        b"0\r\n\n".to_vec(),
        b"0\r\n\rX".to_vec(),
        b"0\n\r\n".to_vec(),
        b"10000000000000000\r\n".to_vec(),
        b"00000000000000005\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"5;a\nb\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"5;\0\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"5;\x7f\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"0\r\n X: 1\r\n\r\n".to_vec(),
        b"0\r\nX : 1\r\n\r\n".to_vec(),
        b"0\r\nX\r\n\r\n".to_vec(),
        b": v\r\n".to_vec(),
        b"0\r\n: v\r\n\r\n".to_vec(),
        b"0\r\nX: \x01\r\n\r\n".to_vec(),
        b"0\r\nX: 1\n\r\n".to_vec(),
        b"0\r\nX: 1\r\r\n".to_vec(),
        long_ext.into_bytes(),
        many_ext.into_bytes(),
        long_trailers.into_bytes(),
    ];
    for body in &cases {
        match all_ways(body) {
            Err(e) if e.status == 400 => {}
            other => panic!(
                "{:?}: want 400, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

#[test]
fn limits_are_inclusive() {
    let ext = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_EXTENSIONS - 1));
    assert_eq!(all_ways(ext.as_bytes()).map(|r| r.1), Ok(true));
    // Trailer bytes count every byte of the trailer lines, CRLFs included.
    let line = "X: 12345\r\n";
    let trailers = format!("0\r\n{}\r\n", line.repeat(MAX_TRAILERS / line.len()));
    assert_eq!(all_ways(trailers.as_bytes()).map(|r| r.1), Ok(true));
}

#[test]
fn an_error_sticks() {
    let mut s = ChunkedScanner::new();
    let e = s.scan(b"z").unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(s.scan(b"0\r\n\r\n"), Err(e));
    assert!(!s.is_done());
}

#[test]
fn empty_scans_and_done() {
    let mut s = ChunkedScanner::default();
    assert_eq!(s.scan(b""), Ok((0, false)));
    assert_eq!(s.scan(b"0\r\n\r\nrest"), Ok((5, true)));
    assert!(s.is_done());
    assert_eq!(s.scan(b"rest"), Ok((0, true)));
    assert_eq!(s.scan(b""), Ok((0, true)));
}

#[test]
fn largest_chunk_size_does_not_overflow() {
    let mut s = ChunkedScanner::new();
    assert_eq!(s.scan(b"ffffffffffffffff\r\n"), Ok((18, false)));
    let big = vec![0u8; 1 << 16];
    assert_eq!(s.scan(&big), Ok((big.len(), false)));
    let mut s = ChunkedScanner::new();
    assert_eq!(s.scan(b"fffffffffffffffff").map_err(|e| e.status), Err(400));
}

#[test]
fn decoder_drops_sizes_extensions_and_trailers() {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let body = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nNEXT";
    assert_eq!(d.decode(body, &mut out), Ok((body.len() - 4, true)));
    assert_eq!(out, b"abcde");
    assert!(d.is_done());
}
