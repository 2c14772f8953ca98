//! The scanner (`scan.rs`) against httparse 1.10, the parser it replaced: on the fuzz seeds
//! (`fuzz/seeds/request`, `fuzz/seeds/response`), every prefix of them and every one-byte
//! change of them to a byte that matters to a head's grammar, and on generated heads (a
//! quickcheck-style generator: random lines built from pieces that are valid, nearly valid
//! and invalid), both must give the same answer — "read more", the same refusal kind, or
//! the same head: length, start line, and every field's name and value at the same place —
//! and the same verdict on bare LFs (httparse accepts them; the scanner notes them for the
//! caller to refuse, as the caller refused them after httparse before).

use std::mem::MaybeUninit;

use crate::head::{self, Fields, Span};
use crate::scan::{self, ScanError};

/// What either parser made of a head: `Ok(None)` is "read more".
type Outcome = Result<Option<Head>, ScanError>;

#[derive(Debug, PartialEq, Eq)]
struct Head {
    len: usize,
    /// Method, target, minor for a request; reason, minor, code for a response.
    line: (Span, Span, u8, u16),
    fields: Vec<(Span, Span)>,
    bare_lf: bool,
}

fn kind(e: httparse::Error) -> ScanError {
    match e {
        httparse::Error::HeaderName => ScanError::HeaderName,
        httparse::Error::HeaderValue => ScanError::HeaderValue,
        httparse::Error::NewLine => ScanError::NewLine,
        httparse::Error::Status => ScanError::Status,
        httparse::Error::Token => ScanError::Token,
        httparse::Error::TooManyHeaders => ScanError::TooManyHeaders,
        httparse::Error::Version => ScanError::Version,
    }
}

fn spans(raw: &[u8], headers: &[httparse::Header<'_>]) -> Vec<(Span, Span)> {
    headers
        .iter()
        .map(|h| (Span::of(raw, h.name.as_bytes()), Span::of(raw, h.value)))
        .collect()
}

fn httparse_request(buf: &[u8], max: usize) -> Outcome {
    let mut slots = vec![MaybeUninit::uninit(); max];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            len,
            line: (
                Span::of(buf, req.method.unwrap_or_default().as_bytes()),
                Span::of(buf, req.path.unwrap_or_default().as_bytes()),
                req.version.unwrap_or(9),
                0,
            ),
            fields: spans(buf, req.headers),
            bare_lf: head::check_line_ends(&buf[..len]).is_err(),
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(kind(e)),
    }
}

fn httparse_response(buf: &[u8], max: usize) -> Outcome {
    let mut slots = vec![MaybeUninit::uninit(); max];
    let mut res = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    match config.parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            len,
            line: (
                Span::of(buf, res.reason.unwrap_or_default().as_bytes()),
                Span::default(),
                res.version.unwrap_or(9),
                res.code.unwrap_or_default(),
            ),
            fields: spans(buf, res.headers),
            bare_lf: head::check_line_ends(&buf[..len]).is_err(),
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(kind(e)),
    }
}

fn scan_request(buf: &[u8], start: usize, max: usize) -> Outcome {
    let mut fields = Fields::with_capacity(4);
    let s = scan::request(buf, start, &mut fields, max)?;
    Ok(s.map(|s| Head {
        len: s.len,
        line: (s.line.method, s.line.target, s.line.minor, 0),
        fields: fields.entries().to_vec(),
        bare_lf: s.bare_lf,
    }))
}

fn scan_response(buf: &[u8], start: usize, max: usize) -> Outcome {
    let mut fields = Fields::with_capacity(4);
    let s = scan::response(buf, start, &mut fields, max)?;
    Ok(s.map(|s| Head {
        len: s.len,
        line: (s.line.reason, Span::default(), s.line.minor, s.line.code),
        fields: fields.entries().to_vec(),
        bare_lf: s.bare_lf,
    }))
}

/// Both parsers on `buf` as a request and as a response, with a few field limits; returns
/// how many of the four answers were complete heads. (Only where the tolerated leading
/// CRLF check lets a head through, as in `parse_request`: the scanner starts after it.)
fn same(buf: &[u8]) -> usize {
    let Ok(Some(start)) = head::leading_empty_line(buf) else {
        return 0;
    };
    let mut complete = 0;
    for max in [100, 3, 0] {
        let want = httparse_request(buf, max);
        let got = scan_request(buf, start, max);
        assert_eq!(
            got,
            want,
            "request {:?} max {max}",
            String::from_utf8_lossy(buf)
        );
        complete += usize::from(matches!(got, Ok(Some(_))));
        let want = httparse_response(buf, max);
        let got = scan_response(buf, start, max);
        assert_eq!(
            got,
            want,
            "response {:?} max {max}",
            String::from_utf8_lossy(buf)
        );
        complete += usize::from(matches!(got, Ok(Some(_))));
    }
    complete
}

/// Bytes that matter to a head's grammar, for the one-byte changes.
const SPECIAL: &[u8] = b"\0\t\n\r :;\"(),/?=@[]{}\\\x7f\x80\xc3\xa9\xff\x01\x1fa1Hh.P";

fn seeds(kind: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(kind);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        out.push(std::fs::read(&path).unwrap());
    }
    assert!(out.len() >= 5, "{} seeds in {}", out.len(), dir.display());
    out
}

#[test]
fn scanner_agrees_with_httparse_on_the_seeds_their_prefixes_and_one_byte_changes() {
    let mut cases = 0;
    let mut complete = 0;
    for seed in seeds("request").into_iter().chain(seeds("response")) {
        let seed = &seed[..seed.len().min(2048)];
        for n in 0..=seed.len() {
            complete += same(&seed[..n]);
            cases += 1;
        }
        let mut changed = seed.to_vec();
        for i in 0..seed.len() {
            for &b in SPECIAL {
                changed[i] = b;
                complete += same(&changed);
                cases += 1;
            }
            changed[i] = seed[i];
        }
    }
    assert!(
        cases > 10_000 && complete > 1_000,
        "{cases} cases, {complete} heads"
    );
}

/// A small xorshift generator: deterministic, so a failure reproduces.
struct Rng(u64, bool);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `from`; the first one only when the generator makes clean heads.
    fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
        if self.1 {
            from[self.below(from.len())]
        } else {
            from[0]
        }
    }

    /// `good` bytes, and (when not clean) now and then any byte at all.
    fn bytes(&mut self, good: &[u8], len: usize, out: &mut Vec<u8>) {
        for _ in 0..len {
            if self.1 && self.below(40) == 0 {
                out.push(self.next() as u8);
            } else {
                out.push(good[self.below(good.len())]);
            }
        }
    }
}

const TOKEN_BYTES: &[u8] = b"abcXYZ09-_.!#$%&'*+^`|~";
const VALUE_BYTES: &[u8] =
    b"abc XYZ 09 \t;=,/\"()<>@?[]{}\\\x80\xc3\xa9\xff\x7e\x21 aaaaaaaaaaaaaaaaaaaaaaaa";
const TARGET_BYTES: &[u8] = b"/abc09?=&%#:@!$'()*+,;~-._\xc3\xa9\xe2\x82\xac";

fn eol(r: &mut Rng) -> &'static [u8] {
    r.pick(&[
        b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n",
    ])
}

fn generated(r: &mut Rng) -> Vec<u8> {
    let mut h = Vec::new();
    if r.below(10) == 0 {
        h.extend_from_slice(b"\r\n");
    }
    let clean = !r.1;
    if r.below(2) == 0 {
        // A request line.
        match r.below(8) {
            0 if !clean => {
                let n = 1 + r.below(8);
                r.bytes(TOKEN_BYTES, n, &mut h)
            }
            1 if !clean => {}
            2 => h.extend_from_slice(b"POST"),
            3 => h.extend_from_slice(b"PROPFIND"),
            _ => h.extend_from_slice(r.pick(&[b"GET", b"POST", b"PROPFIND", b"get"])),
        }
        h.extend_from_slice(r.pick(&[b" ", b" ", b" ", b"  ", b"\t", b""]));
        let n = r.below(60) + usize::from(clean);
        r.bytes(TARGET_BYTES, n, &mut h);
        h.extend_from_slice(r.pick(&[b" ", b" ", b" ", b"  ", b""]));
    } else {
        h.extend_from_slice(r.pick(&[
            b"HTTP/1.1",
            b"HTTP/1.0",
            b"HTTP/2.0",
            b"HTTP/1.",
            b"http/1.1",
        ]));
        h.extend_from_slice(r.pick(&[b" ", b" ", b" ", b"  ", b""]));
        h.extend_from_slice(r.pick(&[b"200", b"404", b"101", b"2x0", b"20", b"9999"]));
        match r.below(5) {
            0 => {}
            1 => h.push(b' '),
            _ => {
                h.push(b' ');
                let n = r.below(20);
                r.bytes(VALUE_BYTES, n, &mut h);
            }
        }
    }
    if r.below(2) == 0 {
        h.extend_from_slice(b"HTTP/1.1");
    } else if h.starts_with(b"G") || h.starts_with(b"P") {
        h.extend_from_slice(r.pick(&[b"HTTP/1.0", b"HTTP/1.1", b"HTTP/3.0", b"HTTP/1.11"]));
    }
    h.extend_from_slice(eol(r));
    for _ in 0..r.below(8) {
        match r.below(12) {
            0 if r.1 => h.push(b' '), // obs-fold or a leading space
            1 if r.1 => h.push(b'\t'),
            _ => {}
        }
        let n = 1 + r.below(12);
        r.bytes(TOKEN_BYTES, n, &mut h);
        h.extend_from_slice(r.pick(&[b":", b":", b":", b" :", b"", b"::"]));
        h.extend_from_slice(r.pick(&[b" ", b"", b"  \t", b"\t"]));
        let n = r.below(50);
        r.bytes(VALUE_BYTES, n, &mut h);
        h.extend_from_slice(r.pick(&[b"", b"", b" ", b" \t "]));
        h.extend_from_slice(eol(r));
    }
    h.extend_from_slice(eol(r));
    if r.1 && r.below(3) == 0 {
        h.truncate(r.below(h.len() + 1));
    }
    h
}

#[test]
fn scanner_agrees_with_httparse_on_generated_heads() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d, true);
    let (mut complete, mut refused) = (0, 0);
    for i in 0..60_000 {
        // Every other head is clean: valid pieces only, so many heads are complete.
        r.1 = i % 2 == 0;
        let h = generated(&mut r);
        complete += same(&h);
        if let Ok(Some(_)) = head::leading_empty_line(&h) {
            refused += usize::from(httparse_request(&h, 100).is_err());
        }
    }
    assert!(
        complete > 5_000 && refused > 5_000,
        "{complete} heads, {refused} refused"
    );
}

#[test]
fn long_values_and_targets_cross_the_eight_byte_blocks() {
    // Every length 0..70 of a value or target, with a bad byte at every place in it.
    for len in 0..70 {
        for bad in [
            None,
            Some(b'\0'),
            Some(0x7f),
            Some(b'\t'),
            Some(0xc3),
            Some(b'\r'),
        ] {
            for at in 0..len.max(1) {
                let mut v = vec![b'v'; len];
                if let (Some(b), true) = (bad, at < len) {
                    v[at] = b;
                }
                let mut req = b"GET /".to_vec();
                req.extend_from_slice(&v);
                req.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\nX: ");
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n\r\n");
                same(&req);
                let mut res = b"HTTP/1.1 200 ".to_vec();
                res.extend_from_slice(&v);
                res.extend_from_slice(b"\r\nX: ");
                res.extend_from_slice(&v);
                res.extend_from_slice(b" \t\r\n\r\n");
                same(&res);
            }
        }
    }
}

#[test]
fn long_names_cross_the_sixteen_byte_blocks() {
    // Every length 1..50 of a field name, with another byte at every place in it.
    for len in 1..50 {
        for other in [
            b'!', b'~', b'_', b'.', b' ', b'\t', b'(', b'\0', 0x80, b':', b'-', b'Z',
        ] {
            for at in 0..len {
                let mut name = vec![b'n'; len];
                name[at] = other;
                let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
                req.extend_from_slice(&name);
                req.extend_from_slice(b": v\r\n\r\n");
                same(&req);
                let mut res = b"HTTP/1.1 200 OK\r\n".to_vec();
                res.extend_from_slice(&name);
                res.extend_from_slice(b":v\r\nX: y\r\n\r\n");
                same(&res);
            }
        }
    }
}

/// The browser head of `benches/ab.sh` (`benches/support/load.py --head browser`).
pub(crate) const BROWSER: &[u8] = b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: http://127.0.0.1/index.html\r\n\
Cookie: _ga=GA1.1.123456789.1700000000; sessionid=0123456789abcdef0123456789abcdef01234567; theme=dark\r\n\
Cache-Control: max-age=0\r\nSec-Fetch-Mode: navigate\r\nConnection: keep-alive\r\n\r\n";

/// For counting instructions, not a check: `parse_request` and httparse on the browser head,
/// 10,000 times each (`valgrind --tool=callgrind <test binary> --ignored scan_cost`).
#[test]
#[ignore]
fn scan_cost() {
    let limits = crate::Limits::default();
    let mut n = 0;
    for _ in 0..10_000 {
        n += crate::parse_request(std::hint::black_box(BROWSER), &limits)
            .map(|p| p.complete().map_or(0, |h| h.len()))
            .unwrap_or(0);
        n += httparse_request(std::hint::black_box(BROWSER), 100)
            .map(|h| h.map_or(0, |h| h.len))
            .unwrap_or(0);
    }
    assert_eq!(n, 20_000 * BROWSER.len());
}
