//! The parser and encoders: round trips, every prefix of a valid header, and each way a
//! header can be wrong.

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}

fn done(buf: &[u8]) -> (usize, Option<(SocketAddr, SocketAddr)>) {
    match parse(buf) {
        Ok(Parsed::Done { header_len, addrs }) => (header_len, addrs),
        other => panic!(
            "{:?}: expected Done, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn err(buf: &[u8]) -> ProxyError {
    match parse(buf) {
        Err(e) => e,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// Every strict prefix of `header` is `Incomplete`, the whole is `Done` with its length,
/// and bytes after it (the client's data) change nothing.
fn check_prefixes(header: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    for n in 0..header.len() {
        assert_eq!(
            parse(&header[..n]),
            Ok(Parsed::Incomplete),
            "prefix of {n} bytes of {:?}",
            String::from_utf8_lossy(header)
        );
    }
    let (len, addrs) = done(header);
    assert_eq!(len, header.len());
    let mut more = header.to_vec();
    more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(done(&more), (len, addrs));
    addrs
}

/// A v2 header with the given version/command and family bytes and payload.
fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(payload.len()).expect("len").to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const INET_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb];

// ---- round trips ----

#[test]
fn v1_round_trip_v4() {
    let (src, dst) = (sa("192.0.2.1:12345"), sa("198.51.100.7:443"));
    let header = encode_v1(src, dst);
    assert_eq!(header, b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n");
    assert_eq!(check_prefixes(&header), Some((src, dst)));
}

#[test]
fn v1_round_trip_v6() {
    let (src, dst) = (sa("[2001:db8::1]:65535"), sa("[::1]:0"));
    let header = encode_v1(src, dst);
    assert_eq!(header, b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
    assert_eq!(check_prefixes(&header), Some((src, dst)));
}

#[test]
fn v2_round_trip_v4() {
    let (src, dst) = (sa("192.0.2.1:12345"), sa("198.51.100.7:443"));
    let header = encode_v2(src, dst);
    assert_eq!(header, v2(0x21, 0x11, &INET_BLOCK));
    assert_eq!(header.len(), 28);
    assert_eq!(check_prefixes(&header), Some((src, dst)));
}

#[test]
fn v2_round_trip_v6() {
    let (src, dst) = (sa("[2001:db8::1]:65535"), sa("[fe80::2:3]:1"));
    let header = encode_v2(src, dst);
    assert_eq!(header.len(), 52);
    assert_eq!(&header[12..16], &[0x21, 0x21, 0, 36]);
    assert_eq!(check_prefixes(&header), Some((src, dst)));
}

#[test]
fn round_trips_over_many_addresses() {
    let addrs = [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "10.0.0.1:80",
        "[::]:0",
        "[::ffff:10.0.0.1]:8080",
        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        "[2001:db8:0:1:2:3:4:5]:1000",
    ];
    for s in addrs {
        for d in addrs {
            let (src, dst) = (sa(s), sa(d));
            let same = src.is_ipv4() == dst.is_ipv4();
            for header in [encode_v1(src, dst), encode_v2(src, dst)] {
                let (len, got) = done(&header);
                assert_eq!(len, header.len());
                let (gs, gd) = got.expect("addresses");
                if same {
                    assert_eq!((gs, gd), (src, dst));
                } else {
                    // Mixed: both come back as IPv6, the IPv4 one mapped.
                    assert!(gs.is_ipv6() && gd.is_ipv6());
                    assert_eq!(gs.ip().to_canonical(), src.ip().to_canonical());
                    assert_eq!(gd.ip().to_canonical(), dst.ip().to_canonical());
                    assert_eq!((gs.port(), gd.port()), (src.port(), dst.port()));
                }
            }
        }
    }
}

#[test]
fn mixed_families_map_v4_into_v6() {
    let (src, dst) = (sa("192.0.2.1:1"), sa("[2001:db8::1]:2"));
    assert_eq!(
        encode_v1(src, dst),
        b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n"
    );
    assert_eq!(
        encode_v1(dst, src),
        b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 2 1\r\n"
    );
    let header = encode_v2(src, dst);
    assert_eq!(&header[12..16], &[0x21, 0x21, 0, 36]);
    let (_, addrs) = done(&header);
    assert_eq!(
        addrs,
        Some((sa("[::ffff:192.0.2.1]:1"), sa("[2001:db8::1]:2")))
    );
}

#[test]
fn v6_scope_and_flow_info_are_not_carried() {
    let src = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("ip"), 7, 5, 3));
    let dst = sa("[fe80::2]:8");
    for header in [encode_v1(src, dst), encode_v2(src, dst)] {
        let (_, addrs) = done(&header);
        assert_eq!(addrs, Some((sa("[fe80::1]:7"), dst)));
    }
}

#[test]
fn longest_v1_header_fits() {
    // The spec's worst case: two full-length hex IPv6 addresses, two five-digit ports.
    let max6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY UNKNOWN {max6} {max6} 65535 65535\r\n");
    assert_eq!(line.len(), V1_MAX_LEN);
    assert_eq!(check_prefixes(line.as_bytes()), None);
    let line = format!("PROXY TCP6 {max6} {max6} 65535 65535\r\n");
    let (src, dst) = check_prefixes(line.as_bytes()).expect("addresses");
    assert_eq!(src, sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
    assert_eq!(dst, src);
    let line = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    check_prefixes(line.as_bytes());
    // The longest text form (an embedded IPv4 address, which no encoder writes for an
    // address that is not IPv4-mapped) does not fit twice.
    let long6 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    let line = format!("PROXY TCP6 {long6} {long6} 65535 65535\r\n");
    assert_eq!(err(line.as_bytes()), ProxyError::V1TooLong);
    let line = format!("PROXY TCP6 {long6} ::1 65535 65535\r\n");
    assert!(done(line.as_bytes()).1.is_some());
}

// ---- v1 ----

#[test]
fn v1_unknown_keeps_the_real_peer() {
    assert_eq!(check_prefixes(b"PROXY UNKNOWN\r\n"), None);
    assert_eq!(
        check_prefixes(b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
        None
    );
    // Whatever follows UNKNOWN is ignored, even if it is not addresses.
    assert_eq!(check_prefixes(b"PROXY UNKNOWN whatever, really\r\n"), None);
    assert_eq!(done(b"PROXY UNKNOWN \r\nrest"), (16, None));
}

#[test]
fn v1_header_len_stops_at_the_crlf() {
    let mut buf = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec();
    let len = buf.len();
    buf.extend_from_slice(b"PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n");
    let (n, addrs) = done(&buf);
    assert_eq!(n, len);
    assert_eq!(addrs, Some((sa("1.2.3.4:1"), sa("5.6.7.8:2"))));
}

#[test]
fn v1_bad_protocol() {
    for line in [
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY \r\n",
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        assert_eq!(err(line.as_bytes()), ProxyError::V1BadProtocol, "{line:?}");
    }
    // Found before the line ends.
    assert_eq!(err(b"PROXY TCP5"), ProxyError::V1BadProtocol);
    assert_eq!(err(b"PROXY X"), ProxyError::V1BadProtocol);
    assert_eq!(err(b"PROXY UNKNOWNX"), ProxyError::V1BadProtocol);
    assert_eq!(err(b"PROXY TCP "), ProxyError::V1BadProtocol);
}

#[test]
fn v1_bad_address() {
    for line in [
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP6 ::1::2 ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY TCP6 [::1] ::1 1 2\r\n",
        "PROXY TCP6 ::g ::1 1 2\r\n",
        "PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
    ] {
        assert_eq!(err(line.as_bytes()), ProxyError::V1BadAddress, "{line:?}");
    }
    // Found before the line ends, as soon as the address cannot be completed.
    for partial in [
        "PROXY TCP4 1.2.3.256",
        "PROXY TCP4 1.2.3.4.",
        "PROXY TCP4 1..",
        "PROXY TCP4 .",
        "PROXY TCP4 01",
        "PROXY TCP4 1234",
        "PROXY TCP4 1:",
        "PROXY TCP4 1.2.3 ",
        "PROXY TCP4 1.2.3.4 5.6.7.8.",
        "PROXY TCP6 ::g",
        "PROXY TCP6 [",
        "PROXY TCP6 ::1%",
        "PROXY TCP6 ::1 ::x",
        "PROXY TCP6 1.2.3.4 ",
    ] {
        assert_eq!(
            err(partial.as_bytes()),
            ProxyError::V1BadAddress,
            "{partial:?}"
        );
    }
}

#[test]
fn v1_bad_port() {
    for line in [
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 http\r\n",
        "PROXY TCP6 ::1 ::1 1 2a\r\n",
    ] {
        assert_eq!(err(line.as_bytes()), ProxyError::V1BadPort, "{line:?}");
    }
    for partial in [
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
        "PROXY TCP4 1.2.3.4 5.6.7.8 655350",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 0",
        "PROXY TCP4 1.2.3.4 5.6.7.8 x",
    ] {
        // `0` alone is a port, so these two become errors only at the next digit.
        let more = format!("{partial}1");
        let partial = if partial.ends_with(" 0") {
            more.as_str()
        } else {
            partial
        };
        assert_eq!(
            err(partial.as_bytes()),
            ProxyError::V1BadPort,
            "{partial:?}"
        );
    }
    assert_eq!(
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 0"),
        Ok(Parsed::Incomplete)
    );
    assert_eq!(
        done(b"PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n").1,
        Some((sa("1.2.3.4:0"), sa("5.6.7.8:0")))
    );
}

#[test]
fn v1_bad_syntax() {
    for line in [
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
        "PROXY TCP4\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY UNKNOWN\n",
        "PROXY UNKNOWN a\nb\r\n",
        "PROXY UNKNOWN a\rb\r\n",
    ] {
        assert_eq!(err(line.as_bytes()), ProxyError::V1BadSyntax, "{line:?}");
    }
    // A space after the last port is wrong before the CRLF comes.
    assert_eq!(
        err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 "),
        ProxyError::V1BadSyntax
    );
}

#[test]
fn v1_doubled_spaces_are_rejected() {
    let line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for (i, _) in line.iter().enumerate().filter(|(_, &b)| b == b' ') {
        let mut bad = line.to_vec();
        bad.insert(i, b' ');
        assert!(parse(&bad).is_err(), "{:?}", String::from_utf8_lossy(&bad));
    }
    assert_eq!(err(b"PROXY TCP4  1.2.3.4"), ProxyError::V1BadAddress);
    // A tab is not a space.
    assert!(parse(b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n").is_err());
}

#[test]
fn v1_too_long() {
    // No CRLF in the first 107 bytes.
    let long = format!("PROXY UNKNOWN {}", "x".repeat(200));
    assert_eq!(err(long.as_bytes()), ProxyError::V1TooLong);
    assert_eq!(err(&long.as_bytes()[..V1_MAX_LEN]), ProxyError::V1TooLong);
    assert_eq!(
        parse(&long.as_bytes()[..V1_MAX_LEN - 1]),
        Ok(Parsed::Incomplete)
    );
    // A bad field is reported as such, even past the limit.
    let long = format!("PROXY TCP5 {}", "x".repeat(200));
    assert_eq!(err(long.as_bytes()), ProxyError::V1BadProtocol);
    let long = format!("PROXY TCP4 1.2.3.4 5.6.7.8 1 2{}", "0".repeat(100));
    assert_eq!(err(long.as_bytes()), ProxyError::V1BadPort);
    // An address that runs on is a bad address before it is too long.
    let long = format!("PROXY TCP6 {}", "0:".repeat(100));
    assert_eq!(err(long.as_bytes()), ProxyError::V1BadAddress);
    // 108 bytes with the CRLF: the CR is the 107th byte.
    let over = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 16 + 1));
    assert_eq!(over.len(), V1_MAX_LEN + 1);
    assert_eq!(err(over.as_bytes()), ProxyError::V1TooLong);
    assert_eq!(err(&over.as_bytes()[..V1_MAX_LEN]), ProxyError::V1TooLong);
    // Exactly 107 is fine.
    let max = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 16));
    assert_eq!(max.len(), V1_MAX_LEN);
    assert_eq!(done(max.as_bytes()), (V1_MAX_LEN, None));
}

#[test]
fn v1_non_utf8_is_an_error() {
    assert_eq!(
        err(b"PROXY TCP4 1.2.3.\xff 5.6.7.8 1 2\r\n"),
        ProxyError::V1BadAddress
    );
    assert_eq!(err(b"PROXY TCP4 \xc3\xa9"), ProxyError::V1BadAddress);
    assert_eq!(err(b"PROXY \xff"), ProxyError::V1BadProtocol);
}

// ---- v2 ----

#[test]
fn v2_local_keeps_the_real_peer() {
    assert_eq!(check_prefixes(&v2(0x20, 0x00, &[])), None);
    // LOCAL ignores the family and whatever the payload holds.
    assert_eq!(check_prefixes(&v2(0x20, 0x11, &INET_BLOCK)), None);
    assert_eq!(check_prefixes(&v2(0x20, 0xff, b"anything")), None);
    assert_eq!(check_prefixes(&v2(0x20, 0x11, &[])), None);
}

#[test]
fn v2_unspec_and_unix_give_no_addresses() {
    assert_eq!(check_prefixes(&v2(0x21, 0x00, &[])), None);
    assert_eq!(check_prefixes(&v2(0x21, 0x00, b"ignored")), None);
    assert_eq!(check_prefixes(&v2(0x21, 0x31, &[0u8; 216])), None);
    assert_eq!(check_prefixes(&v2(0x21, 0x32, &[0u8; 216])), None);
}

#[test]
fn v2_bad_signature() {
    let good = encode_v2(sa("1.2.3.4:1"), sa("5.6.7.8:2"));
    for i in 0..12 {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert_eq!(err(&bad), ProxyError::NotProxy, "byte {i}");
        // As soon as the wrong byte arrives.
        assert_eq!(err(&bad[..=i]), ProxyError::NotProxy, "byte {i} alone");
    }
}

#[test]
fn v2_bad_version_and_command() {
    for ver_cmd in [0x11, 0x31, 0x01, 0xf1, 0x10] {
        let h = v2(ver_cmd, 0x11, &INET_BLOCK);
        assert_eq!(err(&h), ProxyError::V2BadVersion(ver_cmd));
        assert_eq!(err(&h[..13]), ProxyError::V2BadVersion(ver_cmd));
    }
    for ver_cmd in [0x22, 0x2f] {
        let h = v2(ver_cmd, 0x11, &INET_BLOCK);
        assert_eq!(err(&h), ProxyError::V2BadCommand(ver_cmd));
        assert_eq!(err(&h[..13]), ProxyError::V2BadCommand(ver_cmd));
    }
}

#[test]
fn v2_bad_family() {
    // Unknown family or transport; INET/INET6 over UNSPEC or DGRAM.
    for fam in [0x41, 0xf1, 0x13, 0x1f, 0x03, 0x33, 0x10, 0x12, 0x20, 0x22] {
        let h = v2(0x21, fam, &[0u8; 36]);
        assert_eq!(err(&h), ProxyError::V2BadFamily(fam), "0x{fam:02x}");
        assert_eq!(err(&h[..14]), ProxyError::V2BadFamily(fam), "0x{fam:02x}");
    }
}

#[test]
fn v2_length_too_large() {
    let mut h = v2(0x21, 0x11, &INET_BLOCK);
    h[14..16].copy_from_slice(
        &u16::try_from(V2_MAX_PAYLOAD + 1)
            .expect("len")
            .to_be_bytes(),
    );
    assert_eq!(err(&h[..16]), ProxyError::V2TooLong(V2_MAX_PAYLOAD + 1));
    h[14..16].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(err(&h), ProxyError::V2TooLong(65535));
    // LOCAL too: the length bounds what the caller buffers.
    let mut local = v2(0x20, 0x00, &[]);
    local[14..16].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(err(&local), ProxyError::V2TooLong(65535));
    // The limit itself is fine.
    let mut payload = INET_BLOCK.to_vec();
    payload.extend_from_slice(&[0x04, 0x0f, 0xf1]); // NOOP TLV filling the rest
    payload.resize(V2_MAX_PAYLOAD, 0);
    let h = v2(0x21, 0x11, &payload);
    assert_eq!(done(&h).0, V2_FIXED + V2_MAX_PAYLOAD);
    assert_eq!(parse(&h[..h.len() - 1]), Ok(Parsed::Incomplete));
}

#[test]
fn v2_short_address_block() {
    for len in [0, 1, 11] {
        let h = v2(0x21, 0x11, &INET_BLOCK[..len]);
        assert_eq!(err(&h), ProxyError::V2ShortAddress, "INET {len}");
        assert_eq!(
            err(&h[..16]),
            ProxyError::V2ShortAddress,
            "INET {len} early"
        );
    }
    for len in [0, 12, 35] {
        let h = v2(0x21, 0x21, &[0u8; 36][..len]);
        assert_eq!(err(&h), ProxyError::V2ShortAddress, "INET6 {len}");
    }
}

#[test]
fn v2_tlvs_are_skipped() {
    let mut payload = INET_BLOCK.to_vec();
    payload.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN "h2"
    payload.extend_from_slice(&[0x04, 0x00, 0x00]); // empty NOOP
    payload.extend_from_slice(&[0x02, 0x00, 0x0b]); // AUTHORITY
    payload.extend_from_slice(b"example.com");
    let h = v2(0x21, 0x11, &payload);
    let addrs = check_prefixes(&h);
    assert_eq!(addrs, Some((sa("192.0.2.1:12345"), sa("198.51.100.7:443"))));

    let mut payload = vec![0u8; 36];
    payload[15] = 1; // src ::1
    payload[31] = 2; // dst ::2
    payload[33] = 80;
    payload[35] = 81;
    payload.extend_from_slice(&[0xea, 0x00, 0x04, 1, 2, 3, 4]); // a custom type
    let (len, addrs) = done(&v2(0x21, 0x21, &payload));
    assert_eq!(len, 16 + 43);
    assert_eq!(addrs, Some((sa("[::1]:80"), sa("[::2]:81"))));
}

#[test]
fn v2_bad_tlvs() {
    let cases: [&[u8]; 5] = [
        &[0x01],                   // type only
        &[0x01, 0x00],             // half a length
        &[0x01, 0x00, 0x03, b'a'], // value runs past the payload
        &[0x04, 0x00, 0x00, 0x01], // a good TLV then a stray byte
        &[0x01, 0xff, 0xff],       // length far past the payload
    ];
    for tlvs in cases {
        let mut payload = INET_BLOCK.to_vec();
        payload.extend_from_slice(tlvs);
        assert_eq!(
            err(&v2(0x21, 0x11, &payload)),
            ProxyError::V2BadTlv,
            "{tlvs:?}"
        );
        let mut payload = vec![0u8; 36];
        payload.extend_from_slice(tlvs);
        assert_eq!(
            err(&v2(0x21, 0x21, &payload)),
            ProxyError::V2BadTlv,
            "{tlvs:?}"
        );
    }
}

#[test]
fn v2_header_len_excludes_what_follows() {
    let mut buf = encode_v2(sa("1.2.3.4:1"), sa("5.6.7.8:2"));
    buf.extend_from_slice(&encode_v2(sa("9.9.9.9:9"), sa("9.9.9.9:9")));
    let (len, addrs) = done(&buf);
    assert_eq!(len, 28);
    assert_eq!(addrs, Some((sa("1.2.3.4:1"), sa("5.6.7.8:2"))));
}

// ---- not a PROXY header ----

#[test]
fn http_is_rejected_at_the_first_byte() {
    for req in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"G",
        b"POST /x HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01", // a TLS ClientHello
        b"SSH-2.0-OpenSSH\r\n",
        b"\0",
        b" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        assert_eq!(
            err(req),
            ProxyError::NotProxy,
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn near_misses_fail_at_the_first_wrong_byte() {
    // `PUT` and `PATCH` share the first byte with `PROXY `.
    assert_eq!(parse(b"P"), Ok(Parsed::Incomplete));
    assert_eq!(err(b"PU"), ProxyError::NotProxy);
    assert_eq!(err(b"PUT / HTTP/1.1\r\n\r\n"), ProxyError::NotProxy);
    assert_eq!(err(b"PA"), ProxyError::NotProxy);
    assert_eq!(err(b"PROXY\r\n"), ProxyError::NotProxy);
    assert_eq!(err(b"PROXYX"), ProxyError::NotProxy);
    // A blank line starts like the v2 signature.
    assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete));
    assert_eq!(err(b"\r\n\r\nGET"), ProxyError::NotProxy);
    assert_eq!(err(b"\r\r"), ProxyError::NotProxy);
}

#[test]
fn empty_input_is_incomplete() {
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
}

#[test]
fn errors_display_short_messages() {
    let all = [
        ProxyError::NotProxy,
        ProxyError::V1TooLong,
        ProxyError::V1BadProtocol,
        ProxyError::V1BadAddress,
        ProxyError::V1BadPort,
        ProxyError::V1BadSyntax,
        ProxyError::V2BadVersion(0x31),
        ProxyError::V2BadCommand(0x2f),
        ProxyError::V2BadFamily(0x41),
        ProxyError::V2TooLong(9999),
        ProxyError::V2ShortAddress,
        ProxyError::V2BadTlv,
    ];
    let mut seen = std::collections::HashSet::new();
    for e in all {
        let text = e.to_string();
        assert!(text.contains("PROXY"), "{text}");
        assert!(text.len() < 80, "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(seen.insert(text), "two errors share a message: {e:?}");
    }
    assert!(ProxyError::V2BadVersion(0x31).to_string().contains("0x31"));
    assert!(ProxyError::V2TooLong(9999).to_string().contains("9999"));
}

/// Every single-byte change of a valid header either still parses (within the input) or
/// is an error; none panics, and none waits for more than the limits allow.
#[test]
fn single_byte_mutations_never_panic() {
    let headers = [
        encode_v1(sa("192.0.2.1:12345"), sa("198.51.100.7:443")),
        encode_v1(sa("[2001:db8::1]:1"), sa("[::1]:2")),
        encode_v2(sa("192.0.2.1:12345"), sa("198.51.100.7:443")),
        encode_v2(sa("[2001:db8::1]:1"), sa("[::1]:2")),
    ];
    for header in headers {
        for i in 0..header.len() {
            for b in [0u8, b' ', b'\r', b'\n', b'0', b'9', b':', b'.', 0x7f, 0xff] {
                let mut m = header.clone();
                m[i] = b;
                match parse(&m) {
                    Ok(Parsed::Done { header_len, .. }) => assert!(header_len <= m.len()),
                    Ok(Parsed::Incomplete) => assert!(m.len() < V2_FIXED + V2_MAX_PAYLOAD),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}

#[test]
fn local_and_unknown_headers_parse_as_no_addresses() {
    let v2 = encode_v2_local();
    assert_eq!(done(&v2), (16, None));
    assert_eq!(check_prefixes(&v2), None);
    let v1 = encode_v1_unknown();
    assert_eq!(done(&v1), (v1.len(), None));
}
