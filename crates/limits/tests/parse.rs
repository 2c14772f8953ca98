//! The rate parser: nginx's `"10r/s"` and `"600r/m"`, and clear errors for the rest.

use std::time::Duration;

use tether_limits::{parse_rate, RateError, RateRule};

#[test]
fn rates_per_second_and_per_minute() {
    assert_eq!(parse_rate("10r/s"), Ok(Duration::from_millis(100)));
    assert_eq!(parse_rate("600r/m"), Ok(Duration::from_millis(100)));
    assert_eq!(parse_rate(" 1r/m "), Ok(Duration::from_secs(60)));
    assert_eq!(parse_rate("3r/s"), Ok(Duration::from_nanos(333_333_333)));
    assert_eq!(parse_rate("1000000000r/s"), Ok(Duration::from_nanos(1)));
    let rule = RateRule::parse("5r/s", 10, true).unwrap();
    assert_eq!(
        rule,
        RateRule {
            interval: Duration::from_millis(200),
            burst: 10,
            nodelay: true
        }
    );
    assert_eq!(RateRule::per_second(5, 10, true), rule);
}

#[test]
fn errors_say_what_is_wrong_and_what_is_accepted() {
    let cases: [(&str, RateError, &str); 9] = [
        ("", RateError::Empty, "empty rate"),
        ("  ", RateError::Empty, "empty rate"),
        ("10", RateError::MissingUnit("10".into()), "has no unit"),
        (
            "10r/h",
            RateError::UnknownUnit("10r/h".into()),
            "unknown unit",
        ),
        (
            "10 r/s",
            RateError::UnknownUnit("10 r/s".into()),
            "unknown unit",
        ),
        ("r/s", RateError::BadNumber("r/s".into()), "whole number"),
        (
            "1.5r/s",
            RateError::BadNumber("1.5r/s".into()),
            "whole number",
        ),
        (
            "-1r/s",
            RateError::BadNumber("-1r/s".into()),
            "whole number",
        ),
        (
            "0r/m",
            RateError::Zero("0r/m".into()),
            "lets no request through",
        ),
    ];
    for (input, error, words) in cases {
        let got = parse_rate(input).expect_err(input);
        assert_eq!(got, error, "{input:?}");
        let text = got.to_string();
        assert!(text.contains(words), "{input:?}: {text}");
        if !matches!(got, RateError::Zero(_)) {
            assert!(
                text.contains("\"10r/s\""),
                "{input:?} shows an example: {text}"
            );
        }
        assert!(text.contains(input.trim()), "{input:?} quoted: {text}");
    }
    assert_eq!(
        parse_rate("2000000000r/s"),
        Err(RateError::TooHigh("2000000000r/s".into()))
    );
    assert_eq!(
        parse_rate("99999999999999999999r/s"),
        Err(RateError::BadNumber("99999999999999999999r/s".into()))
    );
    assert!(RateRule::parse("ten r/s", 0, false).is_err());
}
