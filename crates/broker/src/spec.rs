//! `ServerSpec`: one simulation server as the config lists it. In TOML an entry of
//! `servers` is either a string (`"localhost:2000"`, as Webots' `session.json` has it) or a
//! table `{ entry = "localhost:2000", weight = 2, allowed_repositories = ["https://..."] }`
//! (unknown keys refused). This file also owns the rule "may this server run that
//! repository?" (`allows`): a prefix match on a URL that is first checked for tricks.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The largest `weight` accepted.
pub const MAX_WEIGHT: u32 = 100;

/// One simulation server of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// `host:port` or `host/port`, exactly as `/session` hands it out.
    pub entry: String,
    /// Selection compares `load / weight`: a weight-2 server counts its load as half.
    pub weight: u32,
    /// URL prefixes of the repositories this server may run (`/session?url=`); `None`:
    /// any repository.
    pub allowed_repositories: Option<Vec<String>>,
}

impl ServerSpec {
    /// A server with weight 1 that allows every repository.
    pub fn new(entry: &str) -> ServerSpec {
        ServerSpec {
            entry: entry.to_string(),
            weight: 1,
            allowed_repositories: None,
        }
    }

    /// What serde cannot check; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let s = &self.entry;
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`servers`: {s:?} is not a host:port"));
        }
        if s.contains("://") {
            return Err(format!(
                "`servers`: write {s:?} without a scheme (`ssl` picks ws/wss and http/https)"
            ));
        }
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return Err(format!(
                "`servers`: {s:?}: `weight` = {} must be between 1 and {MAX_WEIGHT}",
                self.weight
            ));
        }
        for p in self.allowed_repositories.iter().flatten() {
            check_prefix(p)
                .map_err(|m| format!("`servers`: {s:?}: `allowed_repositories`: {m}"))?;
        }
        Ok(())
    }

    /// May this server run the repository at `url`? Without a list, yes. With one, `url`
    /// must start with one of its prefixes and pass `plain_url`.
    pub fn allows(&self, url: &str) -> bool {
        allows(self.allowed_repositories.as_deref(), url)
    }
}

/// `ServerSpec::allows` over a list (`None`: any repository).
pub(crate) fn allows(list: Option<&[String]>, url: &str) -> bool {
    match list {
        None => true,
        Some(list) => plain_url(url) && list.iter().any(|p| url.starts_with(p.as_str())),
    }
}

/// A prefix must name a scheme and a host and end with `/`, so that
/// `https://github.com/cyberbotics/` cannot match `https://github.com/cyberbotics-evil/` and
/// `https://github.com` cannot match `https://github.com.evil.org/`.
fn check_prefix(p: &str) -> Result<(), String> {
    let Some((scheme, rest)) = p.split_once("://") else {
        return Err(format!("{p:?} needs a scheme (`https://host/...`)"));
    };
    let host = rest.split('/').next().unwrap_or("");
    if scheme.is_empty() || host.is_empty() || !rest.contains('/') {
        return Err(format!(
            "{p:?} needs a host and a path (`https://host/...`)"
        ));
    }
    if !p.ends_with('/') {
        return Err(format!(
            "{p:?} must end with `/` (otherwise it would also allow {:?})",
            format!("{p}-other/")
        ));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{p:?} holds a space or a control character"));
    }
    Ok(())
}

/// A repository URL a prefix may be matched against: no space or control character, no
/// backslash, no `.`/`..` path segment, no `%2e` (an encoded dot that a later decoding could
/// turn into one), so `https://github.com/ok/../other/` cannot pass as `https://github.com/ok/`.
pub fn plain_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    !url.is_empty()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        && !lower.contains("%2e")
        && !url
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .split('/')
            .any(|seg| seg == "." || seg == "..")
}

/// The table form, as written in TOML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    entry: String,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    allowed_repositories: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for ServerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ServerSpec, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServerSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a \"host:port\" string or a table { entry = \"host:port\", ... }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ServerSpec, E> {
                Ok(ServerSpec::new(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServerSpec, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ServerSpec {
                    entry: t.entry,
                    weight: t.weight,
                    allowed_repositories: t.allowed_repositories,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        servers: Vec<ServerSpec>,
    }

    #[test]
    fn strings_and_tables() {
        let d: Doc = toml::from_str(
            "servers = [\"a:1\", { entry = \"b:2\", weight = 2, \
             allowed_repositories = [\"https://github.com/cyberbotics/\"] }, { entry = \"c:3\" }]",
        )
        .expect("parses");
        assert_eq!(d.servers[0], ServerSpec::new("a:1"));
        assert_eq!(d.servers[1].weight, 2);
        assert_eq!(
            d.servers[1].allowed_repositories,
            Some(vec!["https://github.com/cyberbotics/".to_string()])
        );
        assert_eq!(d.servers[2], ServerSpec::new("c:3"));
        assert!(d.servers.iter().all(|s| s.validate().is_ok()));
    }

    #[test]
    fn table_errors_name_the_key() {
        let e = toml::from_str::<Doc>("servers = [{ entry = \"a:1\", wieght = 2 }]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unknown field `wieght`"), "{e}");
        let e = toml::from_str::<Doc>("servers = [{ weight = 2 }]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing field `entry`"), "{e}");
        let e = toml::from_str::<Doc>("servers = [3]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("host:port"), "{e}");
    }

    #[test]
    fn validation() {
        let mut s = ServerSpec::new("a:1");
        s.weight = 0;
        assert!(s.validate().unwrap_err().contains("`weight`"));
        s.weight = 101;
        assert!(s.validate().is_err());
        s.weight = 100;
        assert!(s.validate().is_ok());
        for bad in [
            "github.com/x/",
            "https://github.com",
            "https://github.com/cyberbotics",
            "https:///x/",
        ] {
            s.allowed_repositories = Some(vec![bad.into()]);
            assert!(
                s.validate().unwrap_err().contains("`allowed_repositories`"),
                "{bad}"
            );
        }
        s.allowed_repositories = Some(vec!["https://github.com/".into()]);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn allows_by_prefix_and_refuses_tricks() {
        let mut s = ServerSpec::new("a:1");
        assert!(s.allows("anything at all"));
        s.allowed_repositories = Some(vec![
            "https://github.com/cyberbotics/".into(),
            "https://gitlab.com/acme/robots/".into(),
        ]);
        assert!(s.allows("https://github.com/cyberbotics/webots/blob/master/w.wbt"));
        assert!(s.allows("https://gitlab.com/acme/robots/x.wbt?ref=main"));
        assert!(!s.allows("https://github.com/cyberbotics-evil/x/w.wbt"));
        assert!(!s.allows("https://github.com/other/w.wbt"));
        assert!(!s.allows("http://github.com/cyberbotics/w.wbt"));
        assert!(!s.allows("https://github.com/cyberbotics/../other/w.wbt"));
        assert!(!s.allows("https://github.com/cyberbotics/%2E%2E/other/w.wbt"));
        assert!(!s.allows("https://github.com/cyberbotics/x\\..\\y"));
        assert!(!s.allows("https://github.com/cyberbotics/a b"));
        assert!(!s.allows(""));
        // Dots inside a segment are fine.
        assert!(s.allows("https://github.com/cyberbotics/my.repo/w.wbt"));
    }
}
