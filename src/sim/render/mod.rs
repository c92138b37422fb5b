//! Renderers that play fake pods: they write `/metrics` bodies shaped exactly
//! like the real exporters' so the demo, the simulator and the tests exercise
//! the scraper against the same bytes it meets in a cluster.
//!
//! * [`vllm`]: what vLLM serves, i.e. what the Python `prometheus_client`
//!   library renders (sorted labels, `_total` + `_created`, Python floats).
//! * [`dcgm`]: what NVIDIA dcgm-exporter (Go) serves (fixed label order,
//!   integers plain, doubles with six decimals).
//!
//! Both append to a caller-owned `String` and allocate nothing per line: the
//! demo may render a thousand pods per second, so a render must cost about as
//! much as copying its bytes. The shapes are checked against the fixtures in
//! `tests/fixtures/` (made by `scripts/gen_vllm_fixture.py` with the real
//! Python library) by `tests/render_fixture.rs`.

pub mod dcgm;
pub mod vllm;

use std::fmt::{self, Write as _};

/// Shortest round-trip decimal form of a finite, non-zero `|v|`: the same
/// digits Python's `repr` picks (both print the shortest string that reads
/// back to the same double, the closest one on ties).
struct Decimal {
    digits: [u8; 20],
    len: usize,
    /// Power of ten of the first digit: `v = d.ddd × 10^exp`.
    exp: i32,
}

/// A tiny fixed buffer so float formatting needs no heap.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let end = self.len + bytes.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

impl Decimal {
    /// `None` only if `v` is zero, NaN or infinite (callers handle those
    /// first) or if std's `{:e}` output were ever longer than 40 bytes.
    fn of(v: f64) -> Option<Self> {
        if v == 0.0 || !v.is_finite() {
            return None;
        }
        let abs = v.abs();
        if abs.fract() == 0.0 && abs < 9_007_199_254_740_992.0 {
            // Counts and bucket values: integers below 2^53 are exact, so
            // their digits (less trailing zeros) are already the shortest.
            return Some(Self::of_integer(abs as u64));
        }
        let mut buf = StackBuf { buf: [0; 40], len: 0 };
        // `{:e}` without precision prints the shortest round-trip digits,
        // e.g. `1.79546178108279e9`, `5e-324`.
        write!(buf, "{:e}", abs).ok()?;
        let shortest = Self::parse(&buf.buf[..buf.len])?;
        // When the exact value lies halfway between two shortest candidates
        // (e.g. 1059438285926254.25), std rounds the last digit up while
        // Python picks the even one. Std's fixed-precision formatting rounds
        // the exact value half-to-even, so if that rounding at the same
        // length reads back to `v`, it is Python's choice. Only an odd last
        // digit can be the losing side of a tie, so half the values skip
        // this.
        let last_odd = shortest.len > 0 && shortest.digits[shortest.len - 1] % 2 == 1;
        if last_odd {
            let mut even = StackBuf { buf: [0; 40], len: 0 };
            write!(even, "{:.*e}", shortest.len - 1, abs).ok()?;
            let text = &even.buf[..even.len];
            let reads_back = std::str::from_utf8(text).ok().and_then(|t| t.parse::<f64>().ok()) == Some(abs);
            if reads_back {
                return Self::parse(text);
            }
        }
        Some(shortest)
    }

    /// Decimal of a non-zero integer, without going through `fmt`.
    fn of_integer(mut n: u64) -> Self {
        let mut rev = [0u8; 20];
        let mut len = 0;
        while n > 0 {
            rev[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
        }
        let exp = len as i32 - 1;
        let zeros = rev[..len].iter().take_while(|&&c| c == b'0').count();
        let mut d = Decimal { digits: [0; 20], len: len - zeros, exp };
        for (dst, src) in d.digits.iter_mut().zip(rev[zeros..len].iter().rev()) {
            *dst = *src;
        }
        d
    }

    /// Digits and exponent of std's `d.ddde[-]x` text.
    fn parse(text: &[u8]) -> Option<Self> {
        let mut d = Decimal { digits: [0; 20], len: 0, exp: 0 };
        let mut i = 0;
        while i < text.len() && text[i] != b'e' {
            if text[i].is_ascii_digit() {
                if d.len == d.digits.len() {
                    return None;
                }
                d.digits[d.len] = text[i];
                d.len += 1;
            }
            i += 1;
        }
        i += 1; // skip 'e'
        let negative = text.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let mut exp: i32 = 0;
        for &c in text.get(i..)? {
            exp = exp * 10 + i32::from(c - b'0');
        }
        d.exp = if negative { -exp } else { exp };
        Some(d)
    }

    fn digits(&self) -> &str {
        // Only ASCII digits were copied in.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or("0")
    }

    /// `d.ddde+XX` with at least two exponent digits, as Python and
    /// prometheus_client write it.
    fn push_scientific(&self, out: &mut String) {
        let digits = self.digits();
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if self.exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", self.exp.unsigned_abs());
    }

    /// Positional form with at least one digit after the point (`3.0`).
    fn push_fixed(&self, out: &mut String) {
        let digits = self.digits();
        let point = self.exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            push_zeros(out, point.unsigned_abs() as usize);
            out.push_str(digits);
        } else if point as usize >= digits.len() {
            out.push_str(digits);
            push_zeros(out, point as usize - digits.len());
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(point as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    }
}

fn push_zeros(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push('0');
    }
}

/// Appends Python's `repr(float(v))`: `3.0`, `0.4375`, `1e+16`, `1.5e-05`,
/// `nan`, `inf`. Python switches to exponent form when the exponent is
/// below -4 or at least 16.
pub fn py_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("nan");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
        return;
    }
    let Some(d) = Decimal::of(v) else {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    };
    if v < 0.0 {
        out.push('-');
    }
    if (-4..16).contains(&d.exp) {
        d.push_fixed(out);
    } else {
        d.push_scientific(out);
    }
}

/// Appends a sample value or `le` bound the way prometheus_client's
/// `floatToGoString` does, which is what vLLM bodies really contain: Python's
/// repr, except `+Inf`/`-Inf`/`NaN`, and positive numbers of seven or more
/// integer digits in Go-like exponent form (`1.79546178108279e+09`,
/// `1.873312e+06`).
pub fn prom_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    match Decimal::of(v) {
        Some(d) if v > 0.0 && d.exp >= 6 => d.push_scientific(out),
        _ => py_float(v, out),
    }
}

/// Appends a label value escaped as the text format requires (backslash,
/// double quote, newline), so an odd model name cannot break the body.
pub fn push_label_value(out: &mut String, value: &str) {
    if !needs_escape(value) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn needs_escape(value: &str) -> bool {
    value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n'))
}

/// `value` escaped for a label, borrowed when nothing needs escaping (the
/// usual case), so a renderer can escape a repeated value once per body.
pub fn escape_label_value(value: &str) -> std::borrow::Cow<'_, str> {
    if !needs_escape(value) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut s = String::with_capacity(value.len() + 8);
    push_label_value(&mut s, value);
    std::borrow::Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(v: f64) -> String {
        let mut s = String::new();
        py_float(v, &mut s);
        s
    }

    fn prom(v: f64) -> String {
        let mut s = String::new();
        prom_float(v, &mut s);
        s
    }

    /// Expected strings were printed by CPython 3.11 `repr(float(x))`.
    #[test]
    // Exact ties must be written with all their digits: clippy's shorter
    // spelling is std's rounding, the very thing under test.
    #[allow(clippy::excessive_precision)]
    fn py_float_matches_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (3.0, "3.0"),
            (0.4375, "0.4375"),
            (0.1, "0.1"),
            (0.3, "0.3"),
            (1.0, "1.0"),
            (7680.0, "7680.0"),
            (16384.0, "16384.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1795461781.08279, "1795461781.08279"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (-2.5, "-2.5"),
            (-1e-7, "-1e-07"),
            (-1e16, "-1e+16"),
            (123456789.0, "123456789.0"),
            (0.005804427183935652, "0.005804427183935652"),
            // Exact ties between two shortest candidates: Python takes the
            // even digit, std's shortest formatting the upper one.
            (1059438285926254.25, "1059438285926254.2"),
            (-108868734838530.125, "-108868734838530.12"),
            (26363981746409.3125, "26363981746409.312"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(v, want) in cases {
            assert_eq!(py(v), want, "repr({v:?})");
        }
    }

    /// Expected strings were printed by prometheus_client 0.26.0
    /// `utils.floatToGoString(x)`.
    #[test]
    // Exact ties must be written with all their digits: clippy's shorter
    // spelling is std's rounding, the very thing under test.
    #[allow(clippy::excessive_precision)]
    fn prom_float_matches_prometheus_client() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (1.0, "1.0"),
            (123456.0, "123456.0"),
            (999999.9, "999999.9"),
            (1000000.0, "1e+06"),
            (1873312.0, "1.873312e+06"),
            (1234567.5, "1.2345675e+06"),
            (1795461781.08279, "1.79546178108279e+09"),
            (1795461781.0829287, "1.7954617810829287e+09"),
            (187492315136.0, "1.87492315136e+11"),
            (1059438285926254.25, "1.0594382859262542e+15"),
            (1e15, "1e+15"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (1e-5, "1e-05"),
            (-1234567.0, "-1234567.0"),
            (-1e16, "-1e+16"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for &(v, want) in cases {
            assert_eq!(prom(v), want, "floatToGoString({v:?})");
        }
    }

    #[test]
    fn float_text_reads_back_exactly() {
        // A cheap xorshift sweep over bit patterns: whatever the digits, the
        // text must parse back to the same double.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let text = prom(v);
            assert_eq!(text.parse::<f64>().ok(), Some(v), "{text}");
            let text = py(v);
            assert_eq!(text.parse::<f64>().ok(), Some(v), "{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        push_label_value(&mut s, "plain/model-1.0");
        assert_eq!(s, "plain/model-1.0");
        s.clear();
        push_label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
        assert_eq!(escape_label_value("a\"b\\c\nd"), s);
        assert!(matches!(escape_label_value("x/y"), std::borrow::Cow::Borrowed("x/y")));
    }
}
