//! `proxy_protocol::parse` on arbitrary bytes: never panics; a whole header lies within the
//! input, parses the same without what follows it, and every shorter prefix of it is
//! `Incomplete`; `Incomplete` never asks for more than the largest header. The input's
//! first 36 bytes also make two socket addresses whose v1 and v2 encodings parse back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use tether_core::proxy_protocol::{
    encode_v1, encode_v2, parse, Parsed, V1_MAX_LEN, V2_MAX_PAYLOAD,
};

fn check_parse(data: &[u8]) {
    let (header_len, addrs) = match parse(data) {
        Ok(Parsed::Done { header_len, addrs }) => (header_len, addrs),
        Ok(Parsed::Incomplete) => {
            assert!(data.len() < 16 + V2_MAX_PAYLOAD);
            if data.first() == Some(&b'P') {
                assert!(data.len() < V1_MAX_LEN);
            }
            return;
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(header_len > 0);
    assert!(header_len <= data.len());
    assert_eq!(
        parse(&data[..header_len]),
        Ok(Parsed::Done { header_len, addrs })
    );
    for n in [0, 1, header_len / 2, header_len - 1] {
        assert_eq!(parse(&data[..n]), Ok(Parsed::Incomplete), "prefix {n}");
    }
}

fn check_encode(data: &[u8]) {
    let Some(bytes) = data.get(..36) else {
        return;
    };
    let port = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let ip = |at: usize, v6: bool| -> IpAddr {
        if v6 {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                bytes[at],
                bytes[at + 1],
                bytes[at + 2],
                bytes[at + 3],
            ))
        }
    };
    // The low bits of the ports pick each address's family.
    let src = SocketAddr::new(ip(0, bytes[32] & 1 == 1), port(32));
    let dst = SocketAddr::new(ip(16, bytes[34] & 1 == 1), port(34));
    for header in [encode_v1(src, dst), encode_v2(src, dst)] {
        let Ok(Parsed::Done { header_len, addrs }) = parse(&header) else {
            panic!("{src} {dst}: encoded header does not parse: {header:?}");
        };
        assert_eq!(header_len, header.len());
        let (s, d) = addrs.expect("encoded addresses come back");
        if src.is_ipv4() == dst.is_ipv4() {
            assert_eq!((s, d), (src, dst));
        } else {
            assert_eq!(s.ip().to_canonical(), src.ip().to_canonical());
            assert_eq!(d.ip().to_canonical(), dst.ip().to_canonical());
            assert_eq!((s.port(), d.port()), (src.port(), dst.port()));
        }
        check_parse(&header);
    }
}

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    check_encode(data);
});
