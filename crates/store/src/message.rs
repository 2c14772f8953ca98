//! The pub/sub payload that tells the other proxy instances about a change.
//!
//! One line of text, fields separated by single spaces:
//!
//! ```text
//! put <instance> <ttl_ms> <key_len> <key> <value>
//! del <instance> 0 <key_len> <key>
//! ```
//!
//! `instance` is the sender's id (receivers drop their own messages), `ttl_ms` the entry's
//! remaining life in milliseconds, `key_len` the key's length in bytes, so the key may hold
//! any character, spaces included; the value is the rest of the payload. Example:
//! `put 5f1c0e9a2b7d4431 1800000 11 cookie:ab12 s2`.

use std::time::Duration;

/// What another instance did to a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Put { value: String, ttl: Duration },
    Del,
}

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) instance: String,
    pub(crate) key: String,
    pub(crate) change: Change,
}

/// The payload announcing `key → value` for `ttl`.
pub(crate) fn encode_put(instance: &str, key: &str, value: &str, ttl: Duration) -> String {
    format!(
        "put {instance} {} {} {key} {value}",
        ttl.as_millis(),
        key.len()
    )
}

/// The payload announcing that `key` was removed.
pub(crate) fn encode_del(instance: &str, key: &str) -> String {
    format!("del {instance} 0 {} {key}", key.len())
}

/// Parses a payload; the error says what is wrong, for a debug log line.
pub(crate) fn decode(payload: &str) -> Result<Message, String> {
    let mut fields = payload.splitn(5, ' ');
    let op = fields.next().unwrap_or_default();
    let instance = fields.next().ok_or("no instance id")?;
    let ttl_ms: u64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or("no ttl_ms")?;
    let key_len: usize = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or("no key_len")?;
    let rest = fields.next().ok_or("no key")?;
    let key = rest.get(..key_len).ok_or("key shorter than key_len")?;
    let after = rest.get(key_len..).unwrap_or_default();
    let value = match after.strip_prefix(' ') {
        Some(v) => v,
        None if after.is_empty() => "",
        None => return Err("no space after the key".into()),
    };
    let change = match op {
        "put" if ttl_ms > 0 => Change::Put {
            value: value.to_string(),
            ttl: Duration::from_millis(ttl_ms),
        },
        "put" => return Err("put with ttl_ms 0".into()),
        "del" => Change::Del,
        other => return Err(format!("unknown operation {other:?}")),
    };
    if instance.is_empty() {
        return Err("empty instance id".into());
    }
    Ok(Message {
        instance: instance.to_string(),
        key: key.to_string(),
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_del_round_trip() {
        let ttl = Duration::from_millis(1_800_000);
        let p = encode_put("a1", "cookie:x y", "s 2", ttl);
        assert_eq!(p, "put a1 1800000 10 cookie:x y s 2");
        let m = decode(&p).expect("decodes");
        assert_eq!(m.instance, "a1");
        assert_eq!(m.key, "cookie:x y");
        assert_eq!(
            m.change,
            Change::Put {
                value: "s 2".into(),
                ttl
            }
        );
        let d = encode_del("a1", "ké");
        let m = decode(&d).expect("decodes");
        assert_eq!((m.key.as_str(), m.change), ("ké", Change::Del));
    }

    #[test]
    fn empty_value_and_key() {
        let m = decode(&encode_put("i", "", "", Duration::from_secs(1))).expect("decodes");
        assert_eq!(m.key, "");
    }

    #[test]
    fn garbage_is_refused() {
        for p in [
            "",
            "put",
            "put i",
            "put i x 1 k v",
            "put i 10 x k v",
            "put i 10 9 k v",
            "put i 10 1 kv",
            "put i 0 1 k v",
            "set i 10 1 k v",
            "put  10 1 k v",
            "del i 0 1 \u{e9}",
        ] {
            assert!(decode(p).is_err(), "{p:?} should be refused");
        }
    }
}
