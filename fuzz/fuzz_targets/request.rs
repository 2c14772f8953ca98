//! `parse_request` on arbitrary bytes: never panics; a complete head lies within the input,
//! respects the limits, re-parses from its own `raw` to the same head, and every shorter
//! prefix of it is still `Partial`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_http::{parse_request, BodyKind, Limits, Parsed, RequestHead, Version};

fn check(data: &[u8], limits: &Limits) {
    let head = match parse_request(data, limits) {
        Ok(Parsed::Complete(head)) => head,
        Ok(Parsed::Partial) => {
            assert!(data.len() < limits.max_head);
            return;
        }
        Err(e) => {
            assert!([400, 414, 417, 431, 501, 505].contains(&e.status), "{e}");
            return;
        }
    };
    assert!(head.len() <= data.len());
    assert!(head.len() <= limits.max_head);
    assert_eq!(&head.raw[..], &data[..head.len()]);
    assert!(head.raw.ends_with(b"\r\n\r\n"));
    exercise(&head, limits);

    match parse_request(&head.raw, limits) {
        Ok(Parsed::Complete(again)) => assert_eq!(again, head),
        other => panic!("re-parsing raw gave {other:?}"),
    }
    for n in [0, head.len() / 2, head.len() - 1] {
        assert_eq!(parse_request(&data[..n], limits), Ok(Parsed::Partial), "prefix {n}");
    }
}

fn exercise(head: &RequestHead, limits: &Limits) {
    assert!(!head.target().is_empty());
    assert!(head.target().len() <= limits.max_uri);
    assert!(!head.method_str().is_empty());
    assert!(!head.path().is_empty());
    assert!(head.headers().count() <= limits.max_headers);
    for (name, value) in head.headers() {
        assert!(!name.is_empty());
        assert_eq!(head.header(name).is_some(), true);
        assert!(!value.contains(&b'\n') && !value.contains(&b'\r'));
    }
    assert_ne!(head.body, BodyKind::UntilClose);
    if head.version == Version::Http10 {
        assert_ne!(head.body, BodyKind::Chunked);
        assert!(!head.upgrade && !head.expect_continue);
    } else {
        assert!(head.host().is_some());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    let small = Limits {
        max_head: 256,
        max_uri: 32,
        max_headers: 4,
    };
    check(data, &small);
});
