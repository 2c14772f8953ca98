//! Helpers shared by the integration tests: pools of servers named `a`, `b`, ... on
//! loopback ports, and client addresses.

#![allow(dead_code)] // each test file uses a different subset

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tether_balance::{ClientKey, PolicyKind, Pool, PoolOptions, ServerConfig, ServerRef};

/// Server `id` on 127.0.0.1, port 8000 + `port`.
pub fn server(id: &str, port: u16) -> ServerConfig {
    ServerConfig::new(id, SocketAddr::from((Ipv4Addr::LOCALHOST, 8000 + port)))
}

/// `n` servers with ids `s0`, `s1`, ...
pub fn servers(n: usize) -> Vec<ServerConfig> {
    (0..n).map(|i| server(&format!("s{i}"), i as u16)).collect()
}

/// A pool with the given policy and default options otherwise.
pub fn pool(configs: &[ServerConfig], policy: PolicyKind) -> Pool {
    let options = PoolOptions {
        policy,
        ..PoolOptions::default()
    };
    Pool::new("test", configs, options).expect("valid pool")
}

/// The `i`-th test client address, scattered over 10.0.0.0/8 (distinct for `i < 2^24`:
/// multiplying by an odd number is a bijection modulo 2^24).
pub fn client(i: u32) -> ClientKey {
    let ip = Ipv4Addr::from(0x0a00_0000 | (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff));
    ClientKey::new(IpAddr::V4(ip))
}

/// The `i`-th address of the contiguous block starting at 192.168.0.0.
pub fn sequential_client(i: u32) -> ClientKey {
    ClientKey::new(IpAddr::V4(Ipv4Addr::from(0xc0a8_0000u32.wrapping_add(i))))
}

/// The id of a selected server, or "-".
pub fn id(server: Option<ServerRef>) -> String {
    server.map_or_else(|| "-".to_string(), |s| s.id().to_string())
}
