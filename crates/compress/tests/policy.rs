//! The policy's decisions on whole answers: what is compressed, what is skipped and why,
//! and which skips still need `Vary: Accept-Encoding`.

use tether_compress::{AnswerFacts, Coding, Levels, Policy, Skip};

/// A GET for a 10 KiB JSON answer from a browser: compressed with zstd by default.
fn json_answer() -> AnswerFacts<'static> {
    AnswerFacts {
        method: b"GET",
        accept_encoding: Some(b"gzip, deflate, br, zstd"),
        range: false,
        status: 200,
        content_type: Some(b"application/json; charset=utf-8"),
        content_length: Some(10_000),
        content_encoding: None,
        cache_control: Some(b"max-age=60"),
    }
}

#[test]
fn compresses_the_common_case() {
    let p = Policy::default();
    assert_eq!(p.check(&json_answer()), Ok(Coding::Zstd));
    assert_eq!(p.should_compress(&json_answer()), Some(Coding::Zstd));
    assert!(p.varies(&json_answer()));
    // Unknown length (chunked): compressed.
    let chunked = AnswerFacts {
        content_length: None,
        ..json_answer()
    };
    assert_eq!(p.check(&chunked), Ok(Coding::Zstd));
    // Other statuses with content: compressed too (error pages are HTML).
    for status in [201, 203, 404, 500, 503] {
        let f = AnswerFacts {
            status,
            ..json_answer()
        };
        assert_eq!(p.check(&f), Ok(Coding::Zstd), "status {status}");
    }
    // POST answers are compressed like GET ones.
    let post = AnswerFacts {
        method: b"POST",
        ..json_answer()
    };
    assert_eq!(p.check(&post), Ok(Coding::Zstd));
    // Identity is not an encoding.
    let identity = AnswerFacts {
        content_encoding: Some(b"identity"),
        ..json_answer()
    };
    assert_eq!(p.check(&identity), Ok(Coding::Zstd));
}

#[test]
fn server_order_and_client_weights() {
    let mut p = Policy::default();
    let old = AnswerFacts {
        accept_encoding: Some(b"gzip, deflate"),
        ..json_answer()
    };
    assert_eq!(p.check(&old), Ok(Coding::Gzip));
    p.offered = vec![Coding::Brotli, Coding::Gzip];
    assert_eq!(p.check(&json_answer()), Ok(Coding::Brotli));
    let zstd_only = AnswerFacts {
        accept_encoding: Some(b"zstd"),
        ..json_answer()
    };
    assert_eq!(p.check(&zstd_only), Err(Skip::NotAccepted));
    let weighted = AnswerFacts {
        accept_encoding: Some(b"br;q=0.2, gzip"),
        ..json_answer()
    };
    assert_eq!(p.check(&weighted), Ok(Coding::Gzip));
}

#[test]
fn skips_with_their_reasons() {
    let p = Policy::default();
    let cases: Vec<(&str, AnswerFacts, Skip)> = vec![
        (
            "HEAD",
            AnswerFacts {
                method: b"HEAD",
                ..json_answer()
            },
            Skip::Method,
        ),
        (
            "head",
            AnswerFacts {
                method: b"head",
                ..json_answer()
            },
            Skip::Method,
        ),
        (
            "CONNECT",
            AnswerFacts {
                method: b"CONNECT",
                ..json_answer()
            },
            Skip::Method,
        ),
        (
            "206",
            AnswerFacts {
                status: 206,
                range: true,
                ..json_answer()
            },
            Skip::Partial,
        ),
        (
            "Range, 200",
            AnswerFacts {
                range: true,
                ..json_answer()
            },
            Skip::Range,
        ),
        (
            "no-transform",
            AnswerFacts {
                cache_control: Some(b"public, no-transform"),
                ..json_answer()
            },
            Skip::NoTransform,
        ),
        (
            "gzip already",
            AnswerFacts {
                content_encoding: Some(b"gzip"),
                ..json_answer()
            },
            Skip::Encoded,
        ),
        (
            "br already",
            AnswerFacts {
                content_encoding: Some(b"br"),
                ..json_answer()
            },
            Skip::Encoded,
        ),
        (
            "small",
            AnswerFacts {
                content_length: Some(1023),
                ..json_answer()
            },
            Skip::Small,
        ),
        (
            "empty",
            AnswerFacts {
                content_length: Some(0),
                ..json_answer()
            },
            Skip::Small,
        ),
        (
            "png",
            AnswerFacts {
                content_type: Some(b"image/png"),
                ..json_answer()
            },
            Skip::Type,
        ),
        (
            "no type",
            AnswerFacts {
                content_type: None,
                ..json_answer()
            },
            Skip::Type,
        ),
        (
            "204",
            AnswerFacts {
                status: 204,
                ..json_answer()
            },
            Skip::NoContent,
        ),
        (
            "304",
            AnswerFacts {
                status: 304,
                ..json_answer()
            },
            Skip::NoContent,
        ),
        (
            "101",
            AnswerFacts {
                status: 101,
                ..json_answer()
            },
            Skip::NoContent,
        ),
        (
            "no Accept-Encoding",
            AnswerFacts {
                accept_encoding: None,
                ..json_answer()
            },
            Skip::NotAccepted,
        ),
        (
            "identity only",
            AnswerFacts {
                accept_encoding: Some(b"identity"),
                ..json_answer()
            },
            Skip::NotAccepted,
        ),
        (
            "garbage",
            AnswerFacts {
                accept_encoding: Some(b"\xff;q=zz, g zip"),
                ..json_answer()
            },
            Skip::NotAccepted,
        ),
    ];
    for (name, facts, reason) in cases {
        assert_eq!(p.check(&facts), Err(reason), "{name}");
        assert_eq!(p.should_compress(&facts), None, "{name}");
    }
    // The boundary: exactly min_length is compressed.
    let at_min = AnswerFacts {
        content_length: Some(1024),
        ..json_answer()
    };
    assert_eq!(p.check(&at_min), Ok(Coding::Zstd));
}

#[test]
fn vary_on_answers_that_depend_on_accept_encoding() {
    let p = Policy::default();
    // Would be compressed for another request: Vary.
    for f in [
        AnswerFacts {
            method: b"HEAD",
            ..json_answer()
        },
        AnswerFacts {
            range: true,
            ..json_answer()
        },
        AnswerFacts {
            status: 206,
            range: true,
            ..json_answer()
        },
        AnswerFacts {
            accept_encoding: None,
            ..json_answer()
        },
    ] {
        assert!(p.varies(&f), "{f:?}");
    }
    // Never compressed whoever asks: no Vary.
    for f in [
        AnswerFacts {
            content_type: Some(b"image/png"),
            ..json_answer()
        },
        AnswerFacts {
            content_type: Some(b"image/png"),
            method: b"HEAD",
            ..json_answer()
        },
        AnswerFacts {
            content_encoding: Some(b"gzip"),
            ..json_answer()
        },
        AnswerFacts {
            cache_control: Some(b"no-transform"),
            ..json_answer()
        },
        AnswerFacts {
            content_length: Some(10),
            accept_encoding: None,
            ..json_answer()
        },
        AnswerFacts {
            status: 204,
            ..json_answer()
        },
    ] {
        assert!(!p.varies(&f), "{f:?}");
    }
}

#[test]
fn configured_types_min_length_and_levels() {
    let p = Policy {
        types: vec!["text/html".into(), "application/*+json".into()],
        min_length: 0,
        levels: Levels {
            gzip: 1,
            brotli: 5,
            zstd: 1,
        },
        offered: vec![Coding::Gzip],
    };
    let html = AnswerFacts {
        content_type: Some(b"TEXT/HTML"),
        content_length: Some(1),
        ..json_answer()
    };
    assert_eq!(p.check(&html), Ok(Coding::Gzip));
    let css = AnswerFacts {
        content_type: Some(b"text/css"),
        ..json_answer()
    };
    assert_eq!(p.check(&css), Err(Skip::Type));
    let json = json_answer();
    assert_eq!(p.check(&json), Err(Skip::Type));
    let ld = AnswerFacts {
        content_type: Some(b"application/ld+json"),
        ..json_answer()
    };
    assert_eq!(p.check(&ld), Ok(Coding::Gzip));
    let enc = p.encoder(Coding::Gzip).expect("encoder");
    assert_eq!(enc.coding(), Coding::Gzip);
    let all = Policy {
        types: vec!["*".into()],
        ..Policy::default()
    };
    let bin = AnswerFacts {
        content_type: Some(b"application/octet-stream"),
        ..json_answer()
    };
    assert_eq!(all.check(&bin), Ok(Coding::Zstd));
}
