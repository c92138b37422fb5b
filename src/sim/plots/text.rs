//! How wide a label is. An SVG does not know its font until a browser draws it, so layout
//! (tick spacing, label placement, where the text after a bold name starts) works from the
//! advance widths of DejaVu Sans and DejaVu Sans Bold, the widest of the fonts a browser or
//! rsvg picks for `sans-serif` (Arial, Helvetica and Liberation Sans are narrower), so text set
//! in another font takes no more room than was left for it.

/// Width in pixels of `s` set at `px` (the SVG font size), bold when `bold`.
pub fn width(s: &str, px: f64, bold: bool) -> f64 {
    let em: f64 = s.chars().map(|c| advance(c, bold)).sum();
    em * px
}

/// The gap between a bold name and the text after it, pixels: a little more than a bold
/// space, so the two never touch even when the font is not the one measured.
pub fn name_gap(px: f64) -> f64 {
    0.45 * px
}

/// Where the text after a bold name starts (pixels from the name's start) and that text
/// without its leading spaces (SVG drops them): `rest` starting with a space is set
/// [`name_gap`] after the name, otherwise right after it.
pub fn after_bold<'a>(bold: &str, rest: &'a str, px: f64) -> (f64, &'a str) {
    let trimmed = rest.trim_start();
    let gap = if trimmed.len() < rest.len() { name_gap(px) } else { 0.0 };
    (width(bold, px, true) + gap, trimmed)
}

/// Width in pixels of a bold name followed by `rest` in the regular weight, as
/// [`after_bold`] sets them.
pub fn bold_then_width(bold: &str, rest: &str, px: f64) -> f64 {
    let (x, trimmed) = after_bold(bold, rest, px);
    x + width(trimmed, px, false)
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

/// DejaVu Sans advance widths of ' ' to '~', thousandths of an em (from the font's hmtx).
const REGULAR: [u16; 95] = [
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, //
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, //
    1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787, //
    603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, //
    500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, //
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
];

/// DejaVu Sans Bold advance widths of ' ' to '~', thousandths of an em.
const BOLD: [u16; 95] = [
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, //
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, //
    1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850, //
    733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500, //
    500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687, //
    716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
];

/// The advance width of `c` in em; a glyph outside the tables counts as a full em.
fn advance(c: char, bold: bool) -> f64 {
    let table = if bold { &BOLD } else { &REGULAR };
    let milli = match c {
        ' '..='~' => table[c as usize - ' ' as usize],
        '\u{2264}' | '\u{2265}' | '\u{00d7}' | '\u{2212}' | '\u{2248}' => 838,
        '\u{00b7}' if bold => 380,
        '\u{00b7}' => 318,
        '\u{00b0}' => 500,
        _ => 1000,
    };
    f64::from(milli) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_text_is_estimated_wider() {
        assert!(width("llm-scaler", 14.0, false) > width("kpa", 14.0, false));
        assert!(width("kpa", 14.0, true) > width("kpa", 14.0, false));
        // DejaVu Sans sets "llm-scaler" at 14 px 68.3 px wide.
        let w = width("llm-scaler", 14.0, false);
        assert!((68.0..68.6).contains(&w), "{w}");
    }

    #[test]
    fn bold_digits_and_names_are_measured_as_drawn() {
        // DejaVu Sans Bold: "hpa-gpu60" is 6.054 em, "keda-queue20" 8.037 em; an estimate short
        // of that set the setting into the name ("hpa-gpu60GPU 60%").
        assert!((width("hpa-gpu60", 10.0, true) - 60.54).abs() < 0.05);
        assert!((width("keda-queue20", 10.0, true) - 80.37).abs() < 0.05);
        let (x, rest) = after_bold("hpa-gpu60", " GPU 60%", 13.5);
        assert_eq!(rest, "GPU 60%");
        assert!(x >= width("hpa-gpu60", 13.5, true) + width(" ", 13.5, true), "at least a bold space between them");
        assert_eq!(after_bold("kpa", "x", 13.5).0, width("kpa", 13.5, true));
        let whole = bold_then_width("kpa", " concurrency 24", 13.5);
        let want = width("kpa", 13.5, true) + name_gap(13.5) + width("concurrency 24", 13.5, false);
        assert!((whole - want).abs() < 1e-9);
    }
}
