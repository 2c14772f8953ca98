//! Who may use a route (allow/deny by address or network) and how a status route shows
//! the metrics: plain data the config checks and the router reads.

use std::net::IpAddr;

/// An address or a network: `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("not an address: {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
        };
        Ok(Cidr { net, bits })
    }

    /// The network in its one spelling, `addr/bits`, host bits cleared and an IPv4-mapped
    /// network of prefix 96 or more written as the IPv4 one (as the core's PROXY protocol
    /// `Network` reads it), so two spellings of one network compare equal.
    pub fn canonical(&self) -> String {
        let (net, bits) = match self.net {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.bits >= 96 => (IpAddr::V4(v4), self.bits - 96),
                _ => (self.net, self.bits),
            },
            v4 => (v4, self.bits),
        };
        let net = match net {
            IpAddr::V4(n) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                IpAddr::V4((u32::from(n) & mask).into())
            }
            IpAddr::V6(n) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                IpAddr::V6((u128::from(n) & mask).into())
            }
        };
        format!("{net}/{bits}")
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Who may use a route: denied if in `deny`; if `allow` is not empty, only those in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Acl {
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else {
            return self.allow.is_empty() && self.deny.is_empty();
        };
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// How a status route shows the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// eXpServer's metrics JSON (what its dashboard reads from `/api`).
    Json,
    /// Prometheus text exposition.
    Prometheus,
    /// An HTML page for people: listeners, pools, servers, counters (`status_page.rs`).
    Html,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_acl() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let acl = Acl {
            allow: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            deny: vec![Cidr::parse("127.0.0.2").unwrap()],
        };
        assert!(acl.permits(Some("127.0.0.1".parse().unwrap())));
        assert!(!acl.permits(Some("127.0.0.2".parse().unwrap())));
        assert!(!acl.permits(Some("10.0.0.1".parse().unwrap())));
        let canon = |s: &str| Cidr::parse(s).unwrap().canonical();
        assert_eq!(canon("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(canon("::ffff:10.0.0.1"), "10.0.0.1/32");
        assert_eq!(canon("::1"), "::1/128");
    }
}
