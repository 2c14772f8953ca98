//! The rate rule of one limit (`rate`, `burst`, `nodelay`, as nginx's `limit_req`) and the
//! parser of rates written like nginx's: `"10r/s"`, `"600r/m"`.

use std::fmt;
use std::time::Duration;

/// One `limit_req` rule: at most one request per `interval` per key, `burst` requests of
/// excess tolerated (queued), delayed by `excess × interval` unless `nodelay`.
///
/// `interval` is `1 / rate`; a zero interval lets everything through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateRule {
    /// Time between two requests at the steady rate (`1 / rate`).
    pub interval: Duration,
    /// Requests of excess tolerated above the rate (nginx's `burst`, default 0).
    pub burst: u32,
    /// Requests within the burst pass at once instead of being spaced out (nginx's
    /// `nodelay`).
    pub nodelay: bool,
}

impl RateRule {
    /// A rule from a rate written like nginx's (`"10r/s"`, `"600r/m"`), a burst and the
    /// `nodelay` flag.
    pub fn parse(rate: &str, burst: u32, nodelay: bool) -> Result<RateRule, RateError> {
        Ok(RateRule {
            interval: parse_rate(rate)?,
            burst,
            nodelay,
        })
    }

    /// A rule of `per_second` requests per second (at least 1).
    pub fn per_second(per_second: u32, burst: u32, nodelay: bool) -> RateRule {
        RateRule {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst,
            nodelay,
        }
    }
}

/// Why a rate string was refused. `Display` gives a message fit for a config error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateError {
    /// The string was empty.
    Empty,
    /// No `r/s` or `r/m` after the number.
    MissingUnit(String),
    /// A unit other than `r/s` or `r/m`.
    UnknownUnit(String),
    /// The count is not a whole number (or does not fit in 64 bits).
    BadNumber(String),
    /// A count of zero.
    Zero(String),
    /// More than one request per nanosecond.
    TooHigh(String),
}

const FORMS: &str = "write it as requests per second or minute, like \"10r/s\" or \"600r/m\"";

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::Empty => write!(f, "empty rate: {FORMS}"),
            RateError::MissingUnit(s) => write!(f, "rate \"{s}\" has no unit: {FORMS}"),
            RateError::UnknownUnit(s) => {
                write!(
                    f,
                    "rate \"{s}\" has an unknown unit (only r/s and r/m): {FORMS}"
                )
            }
            RateError::BadNumber(s) => {
                write!(
                    f,
                    "rate \"{s}\" does not start with a whole number: {FORMS}"
                )
            }
            RateError::Zero(s) => {
                write!(f, "rate \"{s}\" lets no request through: the least is 1r/m")
            }
            RateError::TooHigh(s) => {
                write!(f, "rate \"{s}\" is above one request per nanosecond")
            }
        }
    }
}

impl std::error::Error for RateError {}

/// The interval (`1 / rate`) of a rate written `<N>r/s` or `<N>r/m`, `N` a whole number
/// of at least 1. Spaces around the string are ignored.
pub fn parse_rate(rate: &str) -> Result<Duration, RateError> {
    let s = rate.trim();
    if s.is_empty() {
        return Err(RateError::Empty);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (count, unit) = s.split_at(digits);
    let period = match unit {
        "r/s" => Duration::from_secs(1),
        "r/m" => Duration::from_secs(60),
        "" if digits > 0 => return Err(RateError::MissingUnit(s.to_string())),
        _ if digits == 0 || unit.starts_with(['.', ',']) => {
            return Err(RateError::BadNumber(s.to_string()))
        }
        _ => return Err(RateError::UnknownUnit(s.to_string())),
    };
    let count: u64 = count
        .parse()
        .map_err(|_| RateError::BadNumber(s.to_string()))?;
    if count == 0 {
        return Err(RateError::Zero(s.to_string()));
    }
    let nanos = period.as_nanos() as u64 / count;
    if nanos == 0 {
        return Err(RateError::TooHigh(s.to_string()));
    }
    Ok(Duration::from_nanos(nanos))
}
