//! Aligned tables for `--format table`: a header row, a rule under it, and
//! one row per result, columns padded to their widest cell.
//!
//! Widths are display columns (`unicode-width`), so `é` takes one and `日`
//! two. Cells are never cut: a wide cell widens its column. A cell holding
//! a control character is shown [`quote`]d, as the text format shows such
//! bytes, so no raw tab, newline or escape sequence reaches the terminal;
//! callers pass keys and values through [`show`](crate::shell::show) first,
//! which does the same for bytes that are not UTF-8.

use unicode_width::UnicodeWidthStr;

use crate::shell::quote;

/// Blanks between two columns.
const GAP: &str = "  ";

/// Where a column's cells sit in its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table being filled: headers, each column's alignment, rows of cells.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| cell(h)).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Aligns column `col` (from 0) to the right.
    pub(crate) fn right(mut self, col: usize) -> Self {
        if let Some(a) = self.align.get_mut(col) {
            *a = Align::Right;
        }
        self
    }

    /// Adds a row: one cell per column (missing cells are empty, extra
    /// ones dropped).
    pub(crate) fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|c| cell(c.as_ref()))
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// The table as lines, each ending in `\n`: the headers, a rule of `-`
    /// as wide as each column, then the rows. No line ends in padding.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                std::iter::once(&self.headers[i])
                    .chain(self.rows.iter().map(|r| &r[i]))
                    .map(|c| c.width())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        let mut out = String::new();
        for line in std::iter::once(&self.headers)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
        {
            self.line(&mut out, line, &widths);
        }
        out
    }

    /// Appends one row of cells, padded to `widths`. Blanks are written
    /// only before something that follows them on the line, so a line has
    /// no trailing padding (a cell's own blanks are kept).
    fn line(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let mut blanks = 0;
        for (i, (c, &w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                blanks += GAP.len();
            }
            let pad = w.saturating_sub(c.width());
            if self.align[i] == Align::Right {
                blanks += pad;
            }
            if !c.is_empty() {
                out.extend(std::iter::repeat_n(' ', blanks));
                out.push_str(c);
                blanks = 0;
            }
            if self.align[i] == Align::Left {
                blanks += pad;
            }
        }
        out.push('\n');
    }
}

/// A cell as shown: as it is, or [`quote`]d when it holds a control
/// character (a tab or newline would break the columns; an escape sequence
/// would reach the terminal).
fn cell(text: &str) -> String {
    if text.chars().any(char::is_control) {
        quote(text.as_bytes())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::show;

    #[test]
    fn a_table_has_a_header_a_rule_and_columns_padded_to_the_widest_cell() {
        let mut t = Table::new(&["KEY", "VALUE"]);
        t.row(["app/a", "hello world"]);
        t.row(["b", "x"]);
        assert_eq!(
            t.render(),
            "\
KEY    VALUE
-----  -----------
app/a  hello world
b      x
"
        );
    }

    #[test]
    fn right_aligned_columns_pad_on_the_left_and_the_last_column_has_no_trailing_blanks() {
        let mut t = Table::new(&["ID", "N", "NOTE"]).right(1);
        t.row(["a", "7", "short"]);
        t.row(["bb", "12345", ""]);
        let out = t.render();
        assert_eq!(
            out,
            "\
ID      N  NOTE
--  -----  -----
a       7  short
bb  12345
"
        );
        assert!(out.lines().all(|l| !l.ends_with(' ')), "{out:?}");
    }

    #[test]
    fn an_empty_result_is_the_header_and_the_rule_alone() {
        let t = Table::new(&["KEY", "VALUE"]);
        assert_eq!(t.render(), "KEY  VALUE\n---  -----\n");
    }

    #[test]
    fn bytes_are_escaped_as_text_shows_them_and_no_control_character_reaches_a_cell() {
        let mut t = Table::new(&["KEY", "VALUE"]);
        t.row([show(b"bin"), show(b"\xff\x00two\n")]);
        t.row([show(b"tab\tkey"), show(b"\x1b[31mred")]);
        // A caller that forgot `show`: still no raw control character.
        t.row(["raw\nline", "bell\x07"]);
        let out = t.render();
        assert_eq!(
            out,
            r#"KEY          VALUE
-----------  ---------------
bin          "\xff\x00two\n"
"tab\tkey"   "\x1b[31mred"
"raw\nline"  "bell\x07"
"#
        );
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert_eq!(out.lines().count(), 5, "{out:?}");
    }

    #[test]
    fn widths_are_display_columns_and_wide_cells_are_never_cut() {
        let long = "v".repeat(300);
        let mut t = Table::new(&["KEY", "VALUE"]);
        t.row(["日本", "é"]);
        t.row(["k", long.as_str()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        // 日本 is four columns wide: "KEY" is padded to 4, as is "k".
        assert_eq!(lines[0], "KEY   VALUE");
        assert_eq!(lines[2], "日本  é");
        assert_eq!(lines[3], format!("k     {long}"));
        assert_eq!(lines[1], format!("----  {}", "-".repeat(300)));
        assert!(!out.contains('…'));
    }

    #[test]
    fn rows_with_too_few_or_too_many_cells_fit_the_headers() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["1"]);
        t.row(["2", "3", "dropped"]);
        assert_eq!(t.render(), "A  B\n-  -\n1\n2  3\n");
    }
}
