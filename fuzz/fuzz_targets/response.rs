//! `parse_response` on arbitrary bytes (the first byte picks `request_was_head`): never
//! panics; a complete head lies within the input and re-parses from its own `raw` to the same
//! head; errors are always 502.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_http::{parse_response, BodyKind, Limits, Parsed};

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let was_head = first & 1 == 1;
    let limits = Limits::default();
    let head = match parse_response(data, was_head, &limits) {
        Ok(Parsed::Complete(head)) => head,
        Ok(Parsed::Partial) => return,
        Err(e) => {
            assert_eq!(e.status, 502, "{e}");
            return;
        }
    };
    assert!(head.len() <= data.len());
    assert_eq!(&head.raw[..], &data[..head.len()]);
    assert!((100..=599).contains(&head.status));
    let _ = head.reason();
    for (name, _) in head.headers() {
        assert!(head.header(name).is_some());
    }
    if was_head || head.status < 200 || head.status == 204 || head.status == 304 {
        assert_eq!(head.body, BodyKind::None);
    }
    if head.body == BodyKind::UntilClose {
        assert!(!head.keep_alive);
    }
    match parse_response(&head.raw, was_head, &limits) {
        Ok(Parsed::Complete(again)) => assert_eq!(again, head),
        other => panic!("re-parsing raw gave {other:?}"),
    }
    if head.len() > 1 {
        assert_eq!(
            parse_response(&data[..head.len() - 1], was_head, &limits),
            Ok(Parsed::Partial)
        );
    }
});
