//! Line charts as SVG, standard library only: a grid of panels, each with a linear x
//! axis, a logarithmic y axis and a few series (solid for measured, dashed for a model).

use std::fmt::Write;

/// Okabe-Ito, then grey and wine: told apart with every common colour-vision deficiency.
pub const COLOURS: [&str; 9] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999",
    "#882255",
];

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub colour: &'static str,
    pub dashed: bool,
    /// (x, y); points with y not finite or ≤ 0 are left out.
    pub points: Vec<(f64, f64)>,
}

/// One small chart.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The y values are µs (ticks read 1µs, 1ms, 1s); otherwise plain numbers (1×, 10×).
    pub y_is_time: bool,
    pub series: Vec<Series>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The panels in a grid of `cols` columns, with a title and a legend per panel.
pub fn svg(title: &str, subtitle: &str, panels: &[Panel], cols: usize) -> String {
    let (pw, ph) = (360.0, 300.0);
    let (ml, mr, mt, mb) = (58.0, 12.0, 28.0, 96.0);
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols);
    let width = cols as f64 * pw;
    let height = 60.0 + rows as f64 * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="10" y="22" font-size="16" font-weight="bold">{}</text><text x="10" y="42" fill="#444">{}</text>"##,
        esc(title),
        esc(subtitle)
    );
    for (n, p) in panels.iter().enumerate() {
        let ox = (n % cols) as f64 * pw;
        let oy = 60.0 + (n / cols) as f64 * ph;
        let (x0, x1) = (ox + ml, ox + pw - mr);
        let (y0, y1) = (oy + mt, oy + ph - mb);
        let pts = p
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(_, y)| y.is_finite() && *y > 0.0);
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            ox + ml,
            oy + 16.0,
            esc(&p.title)
        );
        if xmin > xmax {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">no data</text>"#,
                ox + ml + 10.0,
                oy + 60.0
            );
            continue;
        }
        if xmax - xmin < 1e-9 {
            xmax = xmin + 1.0;
        }
        let (lmin, lmax) = (
            ymin.log10().floor(),
            ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
        );
        let fx = |x: f64| x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
        let fy = |y: f64| y1 - (y.log10() - lmin) / (lmax - lmin) * (y1 - y0);
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            x1 - x0,
            y1 - y0
        );
        let mut e = lmin;
        while e <= lmax + 1e-9 {
            let y = fy(10f64.powf(e));
            let label = if !p.y_is_time {
                format!("{}×", 10f64.powf(e))
            } else if e >= 6.0 {
                format!("{}s", 10f64.powf(e - 6.0))
            } else if e >= 3.0 {
                format!("{}ms", 10f64.powf(e - 3.0))
            } else {
                format!("{}µs", 10f64.powf(e))
            };
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" x2="{x1}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
                x0 - 4.0,
                y + 4.0
            );
            e += 1.0;
        }
        for k in 0..=4 {
            let x = xmin + (xmax - xmin) * f64::from(k) / 4.0;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{:.2}</text>"#,
                fx(x),
                y1 + 14.0,
                x
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            y1 + 28.0,
            esc(&p.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            ox + 12.0,
            (y0 + y1) / 2.0,
            esc(&p.y_label)
        );
        let mut legend_row = 0usize;
        let mut seen = Vec::new();
        for se in &p.series {
            let pts: Vec<(f64, f64)> = se
                .points
                .iter()
                .copied()
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect();
            if pts.is_empty() {
                continue;
            }
            let path: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
                .collect();
            let dash = if se.dashed {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
                path.join(" "),
                se.colour
            );
            if !se.dashed {
                for &(x, y) in &pts {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                        fx(x),
                        fy(y),
                        se.colour
                    );
                }
            }
            // One legend entry per label (a model and its measurement share a colour).
            if seen.contains(&se.label) {
                continue;
            }
            seen.push(se.label.clone());
            let (lx, ly) = (
                x0 + (legend_row % 2) as f64 * 150.0,
                y1 + 44.0 + (legend_row / 2) as f64 * 13.0,
            );
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 16.0,
                ly - 4.0,
                ly - 4.0,
                se.colour,
                lx + 20.0,
                ly,
                esc(&se.label)
            );
            legend_row += 1;
        }
    }
    s.push_str("</svg>\n");
    s
}
