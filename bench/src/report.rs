//! Printing results: a Markdown table with padded columns, readable in a terminal and
//! pasteable into `bench/README.md`.

use std::fmt;

/// A table of strings; the first column is left-aligned, the others right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are left empty).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            f.write_str("|")?;
            for (i, w) in width.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if i == 0 {
                    write!(f, " {cell:<w$} |")?;
                } else {
                    write!(f, " {cell:>w$} |")?;
                }
            }
            writeln!(f)
        };
        line(f, &self.headers)?;
        f.write_str("|")?;
        for (i, w) in width.iter().enumerate().take(cols) {
            let dashes = "-".repeat(*w);
            if i == 0 {
                write!(f, " {dashes} |")?;
            } else {
                write!(f, " {}: |", &dashes[1..])?;
            }
        }
        writeln!(f)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// Nanoseconds with a precision that suits their size: `12.3`, `456`, `12 345`.
pub fn ns(x: f64) -> String {
    if !x.is_finite() {
        "-".to_string()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        group(x.round() as u64)
    }
}

/// A ratio: `73×`, `5.2×`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "-".to_string()
    } else if x < 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{}×", group(x.round() as u64))
    }
}

/// An integer with thin groups of three digits (`12 345`).
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A number for a table: grouped digits from 1000 up, else `digits` decimals; `-` if it
/// is not finite.
pub fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        if x >= 1000.0 {
            group(x.round() as u64)
        } else {
            format!("{x:.digits$}")
        }
    } else {
        "-".into()
    }
}

/// A ratio with two decimals (`1.07×`); `-` if it is not finite.
pub fn ratio2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "-".into()
    }
}

/// The median of `v` (the upper one of an even count); NaN when `v` is empty.
pub fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `f` of runs `a` over `f` of runs `b`. With as many runs on each side (rounds that
/// alternate servers), the median of each round's ratio: a round's two runs are seconds
/// apart and share the machine's other load. Otherwise the ratio of the medians.
pub fn paired_ratio<T>(a: &[T], b: &[T], f: impl Fn(&T) -> f64) -> f64 {
    if !a.is_empty() && a.len() == b.len() {
        median_of(a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect())
    } else {
        median_of(a.iter().map(&f).collect()) / median_of(b.iter().map(&f).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ns(12.345), "12.3");
        assert_eq!(ns(12345.4), "12 345");
        assert_eq!(ratio(73.4), "73×");
        assert_eq!(ratio(5.21), "5.2×");
        assert_eq!(group(1234567), "1 234 567");
    }

    #[test]
    fn draws_a_table() {
        let mut t = Table::new(["a", "bb"]);
        t.row(["x", "1"]);
        assert_eq!(t.to_string(), "| a | bb |\n| - | -: |\n| x |  1 |\n");
    }
}
