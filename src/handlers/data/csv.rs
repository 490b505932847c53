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

use std::fmt::Write as _;
use std::io::{self, Read, Write};

use serde_json::Value;

use super::error::DataError;
use super::format::{Budget, IO_BUFFER, read_error};
use super::rows::{Flow, RowSink, check_columns};

/// Reads the header, then every record, into `sink`.
pub fn read<R: Read>(input: R, budget: &Budget, sink: &mut dyn RowSink) -> Result<(), DataError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        // Ragged records are refused below, with a message naming the line.
        .flexible(true)
        .buffer_capacity(IO_BUFFER)
        .from_reader(input);
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

fn next_record<R: Read>(
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

/// Writes a header and records.
pub struct CsvWriter<W: Write> {
    out: ::csv::Writer<W>,
    /// Reused to format numbers without an allocation per field.
    scratch: String,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> CsvWriter<W> {
        CsvWriter {
            out: ::csv::WriterBuilder::new()
                .buffer_capacity(IO_BUFFER)
                .from_writer(out),
            scratch: String::new(),
        }
    }

    /// Writes the header; none for an input that had no columns.
    pub fn begin(&mut self, columns: &[String]) -> io::Result<()> {
        if !columns.is_empty() {
            self.out.write_record(columns)?;
        }
        Ok(())
    }

    pub fn write(&mut self, row: &[Value]) -> io::Result<()> {
        for value in row {
            match value {
                Value::Null => self.out.write_field("")?,
                Value::String(s) => self.out.write_field(s)?,
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
    use crate::handlers::data::format::Budgeted;
    use crate::handlers::data::rows::Collect;
    use serde_json::json;

    fn parse(text: &str) -> Result<Collect, DataError> {
        let (input, budget) = Budgeted::new(text.as_bytes(), 1 << 20);
        let mut sink = Collect::default();
        read(input, &budget, &mut sink)?;
        Ok(sink)
    }

    fn write(columns: &[&str], rows: &[Vec<Value>]) -> String {
        let mut w = CsvWriter::new(Vec::new());
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
        let err = parse("a,b\n\"unterminated,2\n").err();
        // The csv crate reads an unterminated quote to the end of input as
        // one field; the record then has the wrong width.
        assert!(err.is_some());
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
