//! Which peers may send a PROXY protocol header: a list of networks in CIDR notation
//! (`10.0.0.0/8`, `::1/128`, or a bare address for one host), as nginx's
//! `set_real_ip_from` and HAProxy's `accept-proxy` ACLs take them.
//!
//! A peer that is an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack socket
//! reports for an IPv4 client) is matched as the IPv4 address, and a network written in
//! that form (`::ffff:10.0.0.0/104`) is stored as the IPv4 one (`10.0.0.0/8`), so either
//! spelling matches either kind of peer. `::/0` therefore does not cover IPv4 clients:
//! trust everyone with `0.0.0.0/0` and `::/0`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address with its low `prefix` bits cleared, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Reads `a.b.c.d/n`, `x:y::z/n` or a bare address (a /32 or /128). Host bits below the
    /// prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as nginx and HAProxy do.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("invalid network {text:?}: {addr_text:?} is not an IP address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!("invalid network {text:?}: prefix length must be 0 to {max}")
                })?,
        };
        Ok(Network::new(addr, prefix))
    }

    /// `addr/prefix` with the host bits cleared; an IPv4-mapped network of prefix 96 or more
    /// becomes the IPv4 one. `prefix` is capped at the family's length.
    fn new(addr: IpAddr, prefix: u8) -> Network {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let prefix = prefix.min(max_prefix(addr));
        Network {
            addr: mask(addr, prefix),
            prefix,
        }
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 `ip` as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let same_family = ip.is_ipv4() == self.addr.is_ipv4();
        same_family && mask(ip, self.prefix) == self.addr
    }

    /// The network's address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        Network::parse(text)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// The networks whose peers may send a PROXY protocol header. Empty trusts no one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trusted {
    networks: Vec<Network>,
}

impl Trusted {
    pub fn new(networks: Vec<Network>) -> Trusted {
        Trusted { networks }
    }

    /// Reads every entry with [`Network::parse`]; the first bad one is the error.
    pub fn parse_all<I, S>(entries: I) -> Result<Trusted, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = entries
            .into_iter()
            .map(|e| Network::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trusted { networks })
    }

    /// Whether `ip` lies in one of the networks (an IPv4-mapped IPv6 `ip` as its IPv4
    /// address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> Network {
        Network::parse(s).expect("test network")
    }

    #[test]
    fn v4_networks() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("10.0.0.0")));
        assert!(n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("11.0.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        let n = net("192.168.1.0/24");
        assert!(n.contains(ip("192.168.1.77")));
        assert!(!n.contains(ip("192.168.2.1")));
        let n = net("172.16.0.0/12");
        assert!(n.contains(ip("172.31.0.1")));
        assert!(!n.contains(ip("172.32.0.1")));
    }

    #[test]
    fn bare_address_is_one_host() {
        let n = net("127.0.0.1");
        assert_eq!(n.prefix(), 32);
        assert!(n.contains(ip("127.0.0.1")));
        assert!(!n.contains(ip("127.0.0.2")));
        let n = net("::1");
        assert_eq!(n.prefix(), 128);
        assert!(n.contains(ip("::1")));
        assert!(!n.contains(ip("::2")));
    }

    #[test]
    fn v6_networks() {
        let n = net("::1/128");
        assert!(n.contains(ip("::1")));
        assert!(!n.contains(ip("::")));
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:ffff::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        let n = net("fd00::/8");
        assert!(n.contains(ip("fdff::1")));
        assert!(!n.contains(ip("fe00::1")));
        let n = net("2001:db8::/33");
        assert!(n.contains(ip("2001:db8:7fff::")));
        assert!(!n.contains(ip("2001:db8:8000::")));
    }

    #[test]
    fn zero_prefix_matches_its_whole_family() {
        let any4 = net("0.0.0.0/0");
        assert!(any4.contains(ip("1.2.3.4")));
        assert!(any4.contains(ip("255.255.255.255")));
        assert!(!any4.contains(ip("::1")));
        let any6 = net("::/0");
        assert!(any6.contains(ip("2001:db8::1")));
        assert!(!any6.contains(ip("1.2.3.4")));
        // A mapped peer counts as IPv4.
        assert!(!any6.contains(ip("::ffff:1.2.3.4")));
        assert!(any4.contains(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn families_never_match_each_other() {
        assert!(!net("0.0.0.0/0").contains(ip("::")));
        assert!(!net("::/0").contains(ip("0.0.0.0")));
        // ::a00:1 is the (deprecated) IPv4-compatible form, not mapped: stays IPv6.
        assert!(!net("10.0.0.0/8").contains(ip("::10.0.0.1")));
    }

    #[test]
    fn mapped_peers_match_as_v4() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("::ffff:11.1.2.3")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn mapped_networks_are_stored_as_v4() {
        let n = net("::ffff:10.0.0.0/104");
        assert_eq!(n, net("10.0.0.0/8"));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains(ip("10.9.9.9")));
        assert!(n.contains(ip("::ffff:10.9.9.9")));
        assert_eq!(net("::ffff:127.0.0.1"), net("127.0.0.1/32"));
        // Shorter than /96 it covers more than the mapped range: stays IPv6.
        let wide = net("::ffff:0.0.0.0/80");
        assert!(wide.addr().is_ipv6());
        assert_eq!(wide.prefix(), 80);
    }

    #[test]
    fn host_bits_are_cleared() {
        let n = net("10.1.2.3/8");
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert_eq!(n, net("10.0.0.0/8"));
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(net("1.2.3.4/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn bad_entries_are_errors_with_the_entry_named() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "010.0.0.0/8",
            "10.0.0.0 /8",
            " 10.0.0.0/8",
            "example.com",
            "10.0.0.0/abc",
            "fe80::1%eth0",
            "[::1]/128",
        ] {
            let err = Network::parse(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(Network::parse("10.0.0.0/33")
            .expect_err("/33")
            .contains("0 to 32"));
    }

    #[test]
    fn trusted_list() {
        let t = Trusted::parse_all(["10.0.0.0/8", "127.0.0.1", "::1/128"]).expect("list");
        assert_eq!(t.networks().len(), 3);
        assert!(t.contains(ip("10.2.3.4")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(!t.contains(ip("192.168.0.1")));
        assert!(!t.contains(ip("::2")));
        let err = Trusted::parse_all(vec!["10.0.0.0/8".to_string(), "nope".to_string()])
            .expect_err("bad entry");
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn empty_trusts_no_one() {
        let t = Trusted::default();
        assert!(t.is_empty());
        assert!(!t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("::1")));
        assert_eq!(Trusted::new(Vec::new()), t);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "::/0",
            "2001:db8::/48",
            "127.0.0.1/32",
        ] {
            let n = net(s);
            assert_eq!(n.to_string(), s);
            assert_eq!(s.parse::<Network>(), Ok(n));
        }
    }
}
