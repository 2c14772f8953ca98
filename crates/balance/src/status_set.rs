//! `StatusSet`: which upstream answer statuses count as a passive failure (`fail_statuses`,
//! default `5xx`). A bitmap over 100–599: `Copy`, no allocation, one test per answer.

use std::fmt;

/// A set of HTTP statuses within 100–599.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// No status at all.
    pub const fn empty() -> StatusSet {
        StatusSet([0; 10])
    }

    /// Every status from `min` to `max` inclusive (outside 0–639 ignored).
    pub fn with_range(mut self, min: u16, max: u16) -> StatusSet {
        for s in min..=max.min(639) {
            self.0[usize::from(s / 64)] |= 1 << (s % 64);
        }
        self
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        status < 640 && self.0[usize::from(status / 64)] & (1 << (status % 64)) != 0
    }

    /// Parse one entry of `fail_statuses`: `"5xx"` (a class), `"559"`, or `"500-558"`.
    pub fn parse_entry(text: &str) -> Result<(u16, u16), String> {
        let bad = || {
            format!("{text:?} is not a status (\"502\"), a range (\"500-558\") or a class (\"5xx\") within 100-599")
        };
        let t = text.trim();
        let (min, max) = if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX"))
        {
            let d: u16 = class.parse().map_err(|_| bad())?;
            (d * 100, d * 100 + 99)
        } else if let Some((a, b)) = t.split_once('-') {
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            (a, b)
        } else {
            let s: u16 = t.parse().map_err(|_| bad())?;
            (s, s)
        };
        if !(100..=599).contains(&min) || !(100..=599).contains(&max) || min > max {
            return Err(bad());
        }
        Ok((min, max))
    }
}

impl Default for StatusSet {
    /// `5xx`, nginx's and HAProxy's passive failures.
    fn default() -> StatusSet {
        StatusSet::empty().with_range(500, 599)
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut s = 100;
        while s < 600 {
            if self.contains(s) {
                let start = s;
                while s + 1 < 600 && self.contains(s + 1) {
                    s += 1;
                }
                list.entry(&format_args!("{start}-{s}"));
            }
            s += 1;
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_ranges_and_single_statuses() {
        let d = StatusSet::default();
        assert!(d.contains(500) && d.contains(559) && d.contains(599));
        assert!(!d.contains(499) && !d.contains(600) && !d.contains(200));
        assert_eq!(StatusSet::parse_entry("5xx"), Ok((500, 599)));
        assert_eq!(StatusSet::parse_entry("500-558"), Ok((500, 558)));
        assert_eq!(StatusSet::parse_entry("502"), Ok((502, 502)));
        assert!(StatusSet::parse_entry("6xx").is_err());
        assert!(StatusSet::parse_entry("559-500").is_err());
        assert!(StatusSet::parse_entry("abc").is_err());
        let mapguide = StatusSet::empty().with_range(500, 558).with_range(560, 599);
        assert!(!mapguide.contains(559) && mapguide.contains(558) && mapguide.contains(560));
        assert_eq!(format!("{mapguide:?}"), "[500-558, 560-599]");
    }
}
