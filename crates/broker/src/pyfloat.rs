//! A float as Python's `str(float)` writes it (what Webots' session server prints for a
//! load): the shortest digits that read back as the same `f64`, always with a fractional
//! part (`30.0`), and in exponent notation below `1e-4` or from `1e16` on (`1e-05`,
//! `1.5e+16`). Rust's `{:e}` gives the same shortest digits; only the layout differs.

/// `x` as Python's `str(x)` / `repr(x)`.
pub fn python_str(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{x:e}"); // e.g. "-4.5666666666666664e1", "1e-5", "0e0"
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::python_str;

    #[test]
    fn as_python_prints_them() {
        // Each pair checked against CPython 3's repr().
        let cases: [(f64, &str); 20] = [
            (137.0 / 3.0, "45.666666666666664"),
            (30.0, "30.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-1.0, "-1.0"),
            (12.5, "12.5"),
            (46.75, "46.75"),
            (100.0 / 3.0, "33.333333333333336"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (99.99, "99.99"),
            (123456.789, "123456.789"),
        ];
        for (x, want) in cases {
            assert_eq!(python_str(x), want, "{x:?}");
        }
        assert_eq!(python_str(f64::NAN), "nan");
        assert_eq!(python_str(f64::NEG_INFINITY), "-inf");
    }
}
