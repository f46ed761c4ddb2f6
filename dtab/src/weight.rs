//! Printing union weights exactly as Finagle does (`"%.2f".format(w)` on the JVM).

use std::fmt::Write as _;

/// Formats `w` with two decimals the way Java's `String.format("%.2f", w)` does:
/// the shortest decimal that reads back as `w`, rounded half-up. So `1.005`
/// prints as `1.01` and `0.125` as `0.13`, unlike C's `printf`, which rounds
/// the binary value.
pub fn format_weight(w: f64) -> String {
    let mut out = String::new();
    write_weight(w, &mut out);
    out
}

/// Appends [`format_weight`]`(w)` to `out`, without temporary strings.
pub(crate) fn write_weight(w: f64, out: &mut String) {
    if w.is_nan() {
        out.push_str("NaN");
        return;
    }
    if w.is_infinite() {
        out.push_str(if w > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if w.is_sign_negative() {
        out.push('-');
    }
    let start = out.len();
    // Rust's `Display` for f64 prints the shortest round-trip digits, never in
    // exponent form, which is the decimal Java rounds from. Writing to a
    // `String` cannot fail.
    let _ = write!(out, "{}", w.abs());
    let Some(dot) = out[start..].find('.') else {
        out.push_str(".00");
        return;
    };
    let decimals = out.len() - (start + dot + 1);
    let round = out
        .as_bytes()
        .get(start + dot + 3)
        .is_some_and(|&d| d >= b'5');
    match decimals {
        0 => out.push_str("00"),
        1 => out.push('0'),
        _ => out.truncate(start + dot + 3),
    }
    if round {
        round_up(out, start);
    }
}

/// Adds one unit in the last place to the decimal number (ASCII digits and
/// one `'.'`) that makes up `out[start..]`.
fn round_up(out: &mut String, start: usize) {
    let mut i = out.len();
    while i > start {
        i -= 1;
        match out.as_bytes()[i] {
            b'.' => {}
            b'9' => out.replace_range(i..=i, "0"),
            d => {
                let next = usize::from(d - b'0') + 1;
                out.replace_range(i..=i, &"0123456789"[next..=next]);
                return;
            }
        }
    }
    out.insert(start, '1');
}

#[cfg(test)]
mod tests {
    use super::{format_weight, write_weight};

    #[test]
    fn rounds_half_up_on_the_shortest_decimal() {
        for (w, shown) in [
            (1.0, "1.00"),
            (0.5, "0.50"),
            (1.005, "1.01"),
            (0.125, "0.13"),
            (2.675, "2.68"),
            (0.995, "1.00"),
            (9.995, "10.00"),
            (99.999, "100.00"),
            (0.001, "0.00"),
            (1e20, "100000000000000000000.00"),
            (1.0000001, "1.00"),
            (7.0, "7.00"),
            (1e-7, "0.00"),
            (0.0, "0.00"),
        ] {
            assert_eq!(format_weight(w), shown, "weight {w}");
        }
    }

    #[test]
    fn writes_after_existing_text() {
        for (w, shown) in [(9.995, "x10.00"), (0.125, "x0.13"), (-2.5, "x-2.50")] {
            let mut out = "x".to_string();
            write_weight(w, &mut out);
            assert_eq!(out, shown, "weight {w}");
        }
    }

    #[test]
    fn non_finite_weights_print_like_java() {
        assert_eq!(format_weight(f64::NAN), "NaN");
        assert_eq!(format_weight(f64::INFINITY), "Infinity");
    }
}
