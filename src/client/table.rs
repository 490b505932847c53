//! Aligned plain-text tables and key/value blocks for human output.
//!
//! Small enough to own rather than add a crate: columns are padded to their
//! widest cell (counted in characters), separated by two spaces, numbers
//! aligned right, no trailing spaces, no borders, so the output greps,
//! `cut`s and pastes well. Cells are cut to a width cap so one long error
//! message cannot push every other column off the screen.

use std::fmt;

/// Longest cell, in characters, before it is cut with "…".
const MAX_CELL_CHARS: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table with a header row.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns are left-aligned unless set otherwise with `right`.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Aligns the named columns to the right (for numbers).
    pub fn right(mut self, columns: &[&str]) -> Table {
        for (header, align) in self.headers.iter().zip(self.align.iter_mut()) {
            if columns.contains(header) {
                *align = Align::Right;
            }
        }
        self
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.into_iter().map(|c| cut(&c)).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match self.align[i] {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `key: value` lines with the values aligned, for one object's details.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        self.rows.push((key.to_string(), value.into()));
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (key, value) in &self.rows {
            let line = format!("{key:>width$}: {value}");
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// One line, at most `MAX_CELL_CHARS` characters: a table row must stay one
/// row, so newlines in a cell (an error's output tail) become spaces.
fn cut(cell: &str) -> String {
    let flat: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= MAX_CELL_CHARS {
        return flat;
    }
    let mut short: String = flat.chars().take(MAX_CELL_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_numbers_right() {
        let mut t = Table::new(&["ID", "TYPE", "TRIES"]).right(&["TRIES"]);
        t.row(vec!["a".into(), "email".into(), "1/4".into()]);
        t.row(vec!["bbbbbb".into(), "noop".into(), "10/11".into()]);
        assert_eq!(
            t.to_string(),
            "ID      TYPE   TRIES\n\
             a       email    1/4\n\
             bbbbbb  noop   10/11\n"
        );
    }

    #[test]
    fn no_trailing_spaces_and_short_rows_padded() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["x".into()]);
        assert_eq!(t.to_string(), "A  LONGER\nx\n");
    }

    #[test]
    fn wide_characters_count_once_and_long_cells_are_cut() {
        let mut t = Table::new(&["É", "B"]);
        t.row(vec!["éé".into(), "line one\nline two".into()]);
        t.row(vec!["x".repeat(100), "y".into()]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], format!("éé{}  line one line two", " ".repeat(58)));
        assert!(lines[2].starts_with(&format!("{}…", "x".repeat(59))));
    }

    #[test]
    fn fields_align_their_keys() {
        let mut f = Fields::new();
        f.add("id", "abc");
        f.add("status", "dead");
        f.add("error", "");
        assert_eq!(f.to_string(), "    id: abc\nstatus: dead\n error:\n");
    }
}
