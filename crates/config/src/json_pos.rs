//! Where each value of a JSON text stands, for error messages. serde_json reports the
//! position of a syntax error but keeps none for the values it hands over, so the checks of
//! `xps.rs` look up the byte offset of the value at fault by its path (`servers`, 0,
//! `routes`, 2, `type`) in an index built by one pass over the text. The text is one that
//! serde_json has already accepted; on anything else the scan stops where it is and lookups
//! fall back to the nearest value found.

use std::collections::HashMap;

/// One step of a path: an object's key (unescaped, as serde_json matches it) or an array's
/// index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// `Step::Key` from a `&str`.
pub(super) fn key(k: &str) -> Step {
    Step::Key(k.to_string())
}

/// Byte offsets of the values of one JSON text, by path from the root.
pub(super) struct Positions {
    at: HashMap<Vec<Step>, usize>,
}

/// Deeper than this the scan stops (serde_json refuses past 128 already).
const MAX_DEPTH: usize = 256;

impl Positions {
    pub(super) fn scan(text: &str) -> Positions {
        let mut s = Scanner {
            b: text.as_bytes(),
            i: 0,
            at: HashMap::new(),
        };
        s.ws();
        // Not JSON after all: what was found so far stays usable.
        let _ = s.value(&mut Vec::new(), 0);
        Positions { at: s.at }
    }

    /// The byte offset of the value at `path` (its first character: `{`, `[`, `"`, a digit,
    /// a letter), or of its nearest enclosing value when it is not there (a missing key is
    /// reported at the object that lacks it); 0 when not even the root is.
    pub(super) fn offset(&self, path: &[Step]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|n| self.at.get(&path[..n]))
            .copied()
            .unwrap_or(0)
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    at: HashMap<Vec<Step>, usize>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// The value starting at `self.i`, recorded under `path` with everything inside it.
    fn value(&mut self, path: &mut Vec<Step>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at.insert(path.clone(), self.i);
        match self.peek()? {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    let k = self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    path.push(Step::Key(k));
                    let inner = self.value(path, depth + 1);
                    path.pop();
                    inner?;
                    self.ws();
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                    self.ws();
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                for n in 0.. {
                    path.push(Step::Index(n));
                    let inner = self.value(path, depth + 1);
                    path.pop();
                    inner?;
                    self.ws();
                    if self.eat(b',').is_none() {
                        break;
                    }
                    self.ws();
                }
                self.eat(b']')
            }
            b'"' => self.string().map(drop),
            // A number or a literal (true, false, null): serde_json has checked its spelling.
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+-.".contains(&c))
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    /// The string starting at `self.i`, unescaped.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    };
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }

    /// The character of a `\u` escape (its `\u` consumed), a surrogate pair taken whole.
    fn unicode(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if !(0xD800..0xDC00).contains(&hi) {
            return char::from_u32(hi);
        }
        self.eat(b'\\')?;
        self.eat(b'u')?;
        let lo = self.hex4()?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let v = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())?;
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &Positions, text: &str, path: &[Step]) -> (usize, usize) {
        super::super::line_col(text, p.offset(path))
    }

    #[test]
    fn values_by_path() {
        let text =
            "{\n  \"a\": [1, {\"b\": true}, \"x\"],\n  \"c\" : {\"d\": -1.5e3, \"e\": null}\n}";
        let p = Positions::scan(text);
        assert_eq!(at(&p, text, &[]), (1, 1));
        assert_eq!(at(&p, text, &[key("a")]), (2, 8));
        assert_eq!(at(&p, text, &[key("a"), Step::Index(0)]), (2, 9));
        assert_eq!(at(&p, text, &[key("a"), Step::Index(1)]), (2, 12));
        assert_eq!(at(&p, text, &[key("a"), Step::Index(1), key("b")]), (2, 18));
        assert_eq!(at(&p, text, &[key("a"), Step::Index(2)]), (2, 25));
        assert_eq!(at(&p, text, &[key("c"), key("d")]), (3, 15));
        assert_eq!(at(&p, text, &[key("c"), key("e")]), (3, 28));
    }

    #[test]
    fn missing_path_falls_back_to_the_nearest_value() {
        let text = "{\"a\": {\"b\": []}}";
        let p = Positions::scan(text);
        assert_eq!(p.offset(&[key("a"), key("zz")]), 6);
        assert_eq!(p.offset(&[key("a"), key("b"), Step::Index(3)]), 12);
        assert_eq!(p.offset(&[key("nope"), Step::Index(0)]), 0);
    }

    #[test]
    fn escaped_keys_and_strings() {
        // `"ty\u0070e"` is the key `type` to serde_json; quotes and backslashes inside strings
        // do not end them; a surrogate pair and multi-byte text count as characters.
        let text = "{\"s\": \"a\\\"b\\\\\", \"ty\\u0070e\": \"\u{e9}\\ud83d\\ude00\", \"k\": 1}";
        let p = Positions::scan(text);
        assert_eq!(p.offset(&[key("type")]), 29);
        assert_eq!(p.offset(&[key("k")]), text.len() - 2);
        let text = "{\"\\ud83d\\ude00\": 2}";
        assert_eq!(Positions::scan(text).offset(&[key("\u{1f600}")]), 17);
    }

    #[test]
    fn broken_text_keeps_what_was_found() {
        for text in [
            "",
            "{",
            "{\"a\": [1, ",
            "{\"a\" 1}",
            "\"\\u12",
            "[[[[",
            "{\"a\": \"\\q\"}",
        ] {
            let p = Positions::scan(text);
            assert!(
                p.offset(&[key("a"), Step::Index(1)]) <= text.len(),
                "{text:?}"
            );
        }
        let deep = "[".repeat(10_000);
        assert_eq!(Positions::scan(&deep).offset(&[Step::Index(0)]), 1);
    }
}
