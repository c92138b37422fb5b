//! How wide a label is. An SVG does not know its font until a browser draws it, so layout
//! (tick spacing, label placement) works from an estimate: DejaVu Sans' advance widths, the
//! widest of the common sans-serif fonts, so the estimate errs on the side of more room.

/// Width in pixels of `s` set at `px` (the SVG font size), bold when `bold`.
pub fn width(s: &str, px: f64, bold: bool) -> f64 {
    let em: f64 = s.chars().map(advance).sum();
    em * px * if bold { 1.08 } else { 1.0 }
}

/// Height in pixels of one line at `px`, ascent to descent.
pub fn line_height(px: f64) -> f64 {
    px * 1.2
}

/// The largest font size from `px` down to 10 px at which `s` fits in `w` pixels (a long title
/// shrinks rather than runs off the picture).
pub fn fit(s: &str, w: f64, px: f64, bold: bool) -> f64 {
    let mut p = px;
    while p > 10.0 && width(s, p, bold) > w {
        p -= 0.5;
    }
    p
}

/// DejaVu Sans advance widths in em, by class of glyph.
fn advance(c: char) -> f64 {
    match c {
        'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 0.30,
        ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.40,
        'm' => 0.98,
        'w' => 0.82,
        '%' => 0.95,
        'M' | 'W' => 0.90,
        '0'..='9' => 0.64,
        'A'..='Z' => 0.74,
        'a'..='z' => 0.62,
        '\u{2264}' | '=' | '+' | '<' | '>' | '~' => 0.84,
        _ => 0.70,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_text_is_estimated_wider() {
        assert!(width("llm-scaler", 14.0, false) > width("kpa", 14.0, false));
        assert!(width("kpa", 14.0, true) > width("kpa", 14.0, false));
        // DejaVu Sans sets "llm-scaler" at 14 px about 68 px wide.
        let w = width("llm-scaler", 14.0, false);
        assert!((65.0..80.0).contains(&w), "{w}");
    }
}
