//! Printing union weights exactly as Finagle does (`"%.2f".format(w)` on the JVM).

/// Formats `w` with two decimals the way Java's `String.format("%.2f", w)` does:
/// the shortest decimal that reads back as `w`, rounded half-up. So `1.005`
/// prints as `1.01` and `0.125` as `0.13`, unlike C's `printf`, which rounds
/// the binary value.
pub fn format_weight(w: f64) -> String {
    if w.is_nan() {
        return "NaN".to_string();
    }
    if w.is_infinite() {
        return if w > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Rust's `Display` for f64 prints the shortest round-trip digits, never in
    // exponent form, which is the decimal Java rounds from.
    let shortest = format!("{}", w.abs());
    let (int_part, frac_part) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes().chain(std::iter::repeat(b'0')).take(2))
        .collect();
    if frac_part.as_bytes().get(2).is_some_and(|&d| d >= b'5') {
        round_up(&mut digits);
    }
    let split = digits.len() - 2;
    let mut out = String::with_capacity(digits.len() + 2);
    if w.is_sign_negative() {
        out.push('-');
    }
    out.extend(digits[..split].iter().map(|&d| char::from(d)));
    out.push('.');
    out.extend(digits[split..].iter().map(|&d| char::from(d)));
    out
}

/// Adds one unit in the last place to a string of ASCII digits.
fn round_up(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

#[cfg(test)]
mod tests {
    use super::format_weight;

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
    fn non_finite_weights_print_like_java() {
        assert_eq!(format_weight(f64::NAN), "NaN");
        assert_eq!(format_weight(f64::INFINITY), "Infinity");
    }
}
