//! CSV with a header row: a streaming reader and writer over the `csv`
//! crate, which does RFC 4180 quoting (commas, quotes and line breaks inside
//! quoted fields) both ways.
//!
//! Design choice: every field is read as a string, with no guessing of
//! numbers. A column of ZIP codes (`"007"`) or of ids that happen to look
//! numeric must come back exactly as written, and a guess made per value
//! would give one column mixed types. Where numbers matter (filters,
//! aggregates), numeric strings are read as numbers at that point.
//! Null is written as an empty field; a lone empty field is quoted (`""`)
//! by the crate, so a one-column row of null is not a skipped blank line.
//!
//! Two things the crate does not do are done here. It reads a quoted field
//! that is never closed to the end of the input and reports success, so a
//! stray quote would swallow the rest of a file into one field: [`Quoting`]
//! follows the quotes as the crate's parser does and makes that an error
//! naming the line where the field opened. And exports are meant for
//! spreadsheets, which run a cell starting with `=`, `+`, `-`, `@`, tab or
//! CR as a formula: such cells get a leading `'` (OWASP's advice), unless
//! the job asks otherwise. A cell that is a plain number (`-5`, `+1.5`,
//! `-2e3`) is left alone: a spreadsheet reads it as a number, never as a
//! formula, and escaping it would turn every negative number into text.

use std::fmt::Write as _;
use std::io::{self, Read, Write};

use serde_json::Value;

use super::error::DataError;
use super::input::{Budget, IO_BUFFER, read_error};
use super::rows::{Flow, RowSink, check_columns};

/// Reads the header, then every record, into `sink`.
pub fn read<R: Read>(input: R, budget: &Budget, sink: &mut dyn RowSink) -> Result<(), DataError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        // Ragged records are refused below, with a message naming the line.
        .flexible(true)
        .buffer_capacity(IO_BUFFER)
        .from_reader(Quoting::new(input));
    let mut record = ::csv::StringRecord::new();
    if !next_record(&mut reader, &mut record)? {
        return sink.begin(Vec::new());
    }
    let columns: Vec<String> = record.iter().map(str::to_owned).collect();
    check_columns("source: CSV header", &columns)?;
    let width = columns.len();
    sink.begin(columns)?;
    budget.reset();
    while next_record(&mut reader, &mut record)? {
        budget.reset();
        if record.len() != width {
            let line = record.position().map_or(0, |p| p.line());
            return Err(DataError::bad_input(
                format!("source: line {line}"),
                format!("has {} fields, the header has {width}", record.len()),
            ));
        }
        let row = record.iter().map(|f| Value::String(f.to_owned())).collect();
        if sink.row(row)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// Reads the next record; a quoted field still open when the input ended
/// is an error, whether it made a record or not.
fn next_record<R: Read>(
    reader: &mut ::csv::Reader<Quoting<R>>,
    record: &mut ::csv::StringRecord,
) -> Result<bool, DataError> {
    let more = read_one(reader, record)?;
    if let Some(line) = reader.get_ref().unclosed_quote() {
        return Err(DataError::bad_input(
            format!("source: line {line}"),
            "a quoted field opens here and is never closed: the file ends inside it",
        ));
    }
    Ok(more)
}

fn read_one<R: Read>(
    reader: &mut ::csv::Reader<R>,
    record: &mut ::csv::StringRecord,
) -> Result<bool, DataError> {
    reader.read_record(record).map_err(|e| {
        let location = match e.position() {
            Some(p) => format!("source: line {}", p.line()),
            None => "source".to_string(),
        };
        match e.into_kind() {
            ::csv::ErrorKind::Io(io) => read_error(io),
            ::csv::ErrorKind::Utf8 { err, .. } => DataError::bad_input(
                location,
                format!("field {} is not valid UTF-8", err.field() + 1),
            ),
            other => DataError::bad_input(location, format!("{other:?}")),
        }
    })
}

/// Where the reader is in the quoting of its input: what csv_core's parser
/// does with the settings used here (`,` between fields, `"` quoting with
/// doubled quotes inside, CR or LF ending records, no escapes or comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    StartField,
    InField,
    InQuoted,
    /// A `"` inside a quoted field: its end, or the first of a doubled pair.
    QuoteInQuoted,
}

/// Passes its input through while following the quoting, so that a quoted
/// field still open at the end of the input can be reported.
pub struct Quoting<R> {
    inner: R,
    state: QuoteState,
    line: u64,
    /// The line where the quoted field being read opened.
    opened_at: u64,
    started: bool,
    ended: bool,
}

impl<R> Quoting<R> {
    fn new(inner: R) -> Quoting<R> {
        Quoting {
            inner,
            state: QuoteState::StartField,
            line: 1,
            opened_at: 0,
            started: false,
            ended: false,
        }
    }

    /// The line a quoted field opened on, if the input ended inside it.
    fn unclosed_quote(&self) -> Option<u64> {
        (self.ended && self.state == QuoteState::InQuoted).then_some(self.opened_at)
    }

    fn follow(&mut self, mut bytes: &[u8]) {
        // csv_core skips a UTF-8 byte order mark at the start of its first
        // buffer, which is the first read's bytes.
        if !self.started {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        let mut i = 0;
        while i < bytes.len() {
            // Inside a field only a few bytes can change anything: skip to
            // the next one (a line break still counts lines).
            let next = match self.state {
                QuoteState::InQuoted => bytes[i..].iter().position(|&b| b == b'"' || b == b'\n'),
                QuoteState::InField => bytes[i..]
                    .iter()
                    .position(|&b| matches!(b, b',' | b'\n' | b'\r')),
                _ => Some(0),
            };
            let Some(skip) = next else {
                return;
            };
            i += skip;
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (QuoteState::StartField, b'"') => {
                    self.opened_at = self.line;
                    QuoteState::InQuoted
                }
                (QuoteState::StartField | QuoteState::InField, b',' | b'\n' | b'\r') => {
                    QuoteState::StartField
                }
                (QuoteState::StartField | QuoteState::InField, _) => QuoteState::InField,
                (QuoteState::InQuoted, b'"') => QuoteState::QuoteInQuoted,
                (QuoteState::InQuoted, _) => QuoteState::InQuoted,
                (QuoteState::QuoteInQuoted, b'"') => QuoteState::InQuoted,
                (QuoteState::QuoteInQuoted, b',' | b'\n' | b'\r') => QuoteState::StartField,
                (QuoteState::QuoteInQuoted, _) => QuoteState::InField,
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
    }
}

impl<R: Read> Read for Quoting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        self.follow(&buf[..n]);
        Ok(n)
    }
}

/// Whether a spreadsheet could take `cell` for a formula: it starts with
/// one of `= + - @`, tab or CR, and is not a plain number.
pub fn is_formula_like(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) && !is_plain_number(cell)
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`): a number and nothing
/// else, so no spreadsheet reads a formula into it.
fn is_plain_number(cell: &str) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let mut s = cell.as_bytes();
    if let Some(rest) = s.strip_prefix(b"-").or_else(|| s.strip_prefix(b"+")) {
        s = rest;
    }
    let whole = digits(s);
    s = &s[whole..];
    let mut fraction = 0;
    if let Some(rest) = s.strip_prefix(b".") {
        fraction = digits(rest);
        s = &rest[fraction..];
    }
    if whole + fraction == 0 {
        return false;
    }
    if let Some(rest) = s.strip_prefix(b"e").or_else(|| s.strip_prefix(b"E")) {
        let rest = rest
            .strip_prefix(b"-")
            .or_else(|| rest.strip_prefix(b"+"))
            .unwrap_or(rest);
        let exponent = digits(rest);
        if exponent == 0 {
            return false;
        }
        s = &rest[exponent..];
    }
    s.is_empty()
}

/// Writes a header and records.
pub struct CsvWriter<W: Write> {
    out: ::csv::Writer<W>,
    /// Whether formula-like text cells get a leading `'`.
    formula_escape: bool,
    /// Reused to format numbers and escaped cells without an allocation
    /// per field.
    scratch: String,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W, formula_escape: bool) -> CsvWriter<W> {
        CsvWriter {
            out: ::csv::WriterBuilder::new()
                .buffer_capacity(IO_BUFFER)
                .from_writer(out),
            formula_escape,
            scratch: String::new(),
        }
    }

    /// Writes the header; none for an input that had no columns. Column
    /// names are cells too, and are escaped like any text.
    pub fn begin(&mut self, columns: &[String]) -> io::Result<()> {
        if !columns.is_empty() {
            for name in columns {
                self.text(name)?;
            }
            self.out.write_record(None::<&[u8]>)?;
        }
        Ok(())
    }

    fn text(&mut self, cell: &str) -> io::Result<()> {
        if self.formula_escape && is_formula_like(cell) {
            self.scratch.clear();
            self.scratch.push('\'');
            self.scratch.push_str(cell);
            self.out.write_field(&self.scratch)?;
        } else {
            self.out.write_field(cell)?;
        }
        Ok(())
    }

    pub fn write(&mut self, row: &[Value]) -> io::Result<()> {
        for value in row {
            match value {
                Value::Null => self.out.write_field("")?,
                Value::String(s) => self.text(s)?,
                Value::Bool(b) => self.out.write_field(if *b { "true" } else { "false" })?,
                Value::Number(n) => {
                    self.scratch.clear();
                    let _ = write!(self.scratch, "{n}");
                    self.out.write_field(&self.scratch)?;
                }
                nested => self.out.write_field(nested.to_string())?,
            }
        }
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::data::input::Budgeted;
    use crate::handlers::data::rows::Collect;
    use serde_json::json;

    fn parse(text: &str) -> Result<Collect, DataError> {
        let (input, budget) = Budgeted::new(text.as_bytes(), 1 << 20);
        let mut sink = Collect::default();
        read(input, &budget, &mut sink)?;
        Ok(sink)
    }

    fn write(columns: &[&str], rows: &[Vec<Value>]) -> String {
        let mut w = CsvWriter::new(Vec::new(), true);
        let columns: Vec<String> = columns.iter().map(|s| s.to_string()).collect();
        w.begin(&columns).unwrap();
        for row in rows {
            w.write(row).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn quoted_commas_quotes_and_newlines_survive_both_ways() {
        let tricky = vec![
            json!("a, b"),
            json!("say \"hi\""),
            json!("line 1\nline 2\r\nline 3"),
        ];
        let text = write(&["x", "y", "z"], std::slice::from_ref(&tricky));
        assert_eq!(
            text,
            "x,y,z\n\"a, b\",\"say \"\"hi\"\"\",\"line 1\nline 2\r\nline 3\"\n"
        );
        let back = parse(&text).unwrap();
        assert_eq!(back.rows, vec![tricky]);
    }

    #[test]
    fn values_are_written_as_text_and_read_as_strings() {
        let text = write(
            &["n", "f", "b", "null", "nested"],
            &[vec![
                json!(42),
                json!(1.5),
                json!(true),
                json!(null),
                json!({"a": [1]}),
            ]],
        );
        assert_eq!(
            text,
            "n,f,b,null,nested\n42,1.5,true,,\"{\"\"a\"\":[1]}\"\n"
        );
        let back = parse(&text).unwrap();
        assert_eq!(
            back.rows[0],
            vec![
                json!("42"),
                json!("1.5"),
                json!("true"),
                json!(""),
                json!("{\"a\":[1]}")
            ]
        );
    }

    #[test]
    fn a_lone_empty_field_is_not_a_blank_line() {
        let text = write(&["only"], &[vec![json!(null)], vec![json!("x")]]);
        assert_eq!(
            parse(&text).unwrap().rows,
            vec![vec![json!("")], vec![json!("x")]]
        );
    }

    #[test]
    fn utf8_header_and_bom() {
        let back = parse("\u{feff}naïve,日本\r\nä,語\r\n").unwrap();
        assert_eq!(back.columns.unwrap(), vec!["naïve", "日本"]);
        assert_eq!(back.rows, vec![vec![json!("ä"), json!("語")]]);
    }

    #[test]
    fn an_empty_file_has_no_columns_and_a_header_alone_no_rows() {
        let empty = parse("").unwrap();
        assert_eq!(empty.columns, Some(vec![]));
        assert!(empty.rows.is_empty());
        let header = parse("a,b\n").unwrap();
        assert_eq!(header.columns.unwrap(), vec!["a", "b"]);
        assert!(header.rows.is_empty());
    }

    #[test]
    fn ragged_records_and_bad_headers_are_refused_with_their_line() {
        let err = parse("a,b\n1,2\n3\n").err().unwrap();
        assert_eq!(
            err.to_string(),
            "source: line 3: has 1 fields, the header has 2"
        );
        let err = parse("a,a\n1,2\n").err().unwrap();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn a_quoted_field_left_open_at_the_end_is_an_error_naming_its_line() {
        // The file: the crate alone reads one row and succeeds.
        let err = parse("id,name\n1,\"abc\n2,def\n3,ghi\n").err().unwrap();
        assert_eq!(
            err.to_string(),
            "source: line 2: a quoted field opens here and is never closed: the file ends inside it"
        );
        assert!(!err.is_retryable());
        let err = parse("a,b\n\"unterminated,2\n").err().unwrap();
        assert!(
            err.to_string().starts_with("source: line 2: a quoted"),
            "{err}"
        );
        let err = parse("\"a,b\n1,2\n").err().unwrap();
        assert!(
            err.to_string().starts_with("source: line 1: a quoted"),
            "{err}"
        );
        let err = parse("a\n\"x\"\"y").err().unwrap();
        assert!(
            err.to_string().starts_with("source: line 2: a quoted"),
            "{err}"
        );
    }

    #[test]
    fn closed_quotes_of_every_kind_are_not_mistaken_for_open_ones() {
        let back = parse(
            "\u{feff}\"a\",b\r\n\"x\"\"y\",\"\"\r\nab\"c,\"multi\nline\"\n\"q\"tail,\"\"\"\"",
        )
        .unwrap();
        assert_eq!(back.columns.unwrap(), vec!["a", "b"]);
        assert_eq!(
            back.rows,
            vec![
                vec![json!("x\"y"), json!("")],
                vec![json!("ab\"c"), json!("multi\nline")],
                vec![json!("qtail"), json!("\"")],
            ]
        );
    }

    #[test]
    fn formula_like_cells_are_escaped_and_plain_numbers_are_not() {
        let cells = [
            "=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-", "--5", "-5x", "=",
        ];
        let text = write(
            &["c"],
            &cells.iter().map(|c| vec![json!(c)]).collect::<Vec<_>>(),
        );
        let back = parse(&text).unwrap();
        for (cell, row) in cells.iter().zip(&back.rows) {
            assert_eq!(row[0], json!(format!("'{cell}")), "{cell:?}");
        }
        let numbers = ["-5", "+5", "-0.25", "-.5", "-1e3", "+2.5E-7", "-7."];
        let rows: Vec<Vec<Value>> = numbers.iter().map(|c| vec![json!(c)]).collect();
        let back = parse(&write(&["c"], &rows)).unwrap();
        assert_eq!(back.rows, rows);
        // A JSON number is a number, never a formula.
        assert_eq!(write(&["n"], &[vec![json!(-5)]]), "n\n-5\n");
        // Column names are cells too.
        assert_eq!(write(&["=x"], &[]), "'=x\n");
        // Safe text is untouched.
        assert_eq!(write(&["c"], &[vec![json!("a=b")]]), "c\na=b\n");
    }

    #[test]
    fn formula_escaping_can_be_turned_off() {
        let mut w = CsvWriter::new(Vec::new(), false);
        w.begin(&["=h".to_string()]).unwrap();
        w.write(&[json!("=1+2")]).unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "=h\n=1+2\n"
        );
    }

    #[test]
    fn reading_stops_when_the_sink_says_so() {
        let (input, budget) = Budgeted::new(&b"a\n1\n2\n3\n"[..], 1 << 20);
        let mut sink = Collect {
            stop_after: Some(2),
            ..Collect::default()
        };
        read(input, &budget, &mut sink).unwrap();
        assert_eq!(sink.rows.len(), 2);
    }

    #[test]
    fn invalid_utf8_is_bad_input() {
        let (input, budget) = Budgeted::new(&b"a\n\xff\xfe\n"[..], 1 << 20);
        let err = read(input, &budget, &mut Collect::default()).err().unwrap();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }
}
