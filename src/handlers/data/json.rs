//! JSON: a streaming reader for one array of objects (`.json`) and for one
//! object per line (`.jsonl`), and a writer for both.
//!
//! Design choice: the array is read through a serde visitor over the
//! sequence, which deserializes one element, hands it to the sink, and only
//! then reads the next, so memory holds one object, never the array. Objects
//! are read straight into a row aligned with the first object's keys rather
//! than into a map: that keeps the file's key order (serde_json's map would
//! sort it), costs no key allocation per row, and makes a key the first
//! object lacked an error instead of a silently dropped field. An integer
//! too wide for 64 bits, which the parser would round, is an error naming
//! its record and column (see the `wide_int` module).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::DataError;
use super::input::{Budget, IO_BUFFER, read_error};
use super::rows::{Flow, Row, RowSink, check_columns};
use super::wide_int::{Watched, WideInt, WideInts, may_hold_wide};

/// Reads a file holding one JSON array of objects.
pub fn read_array<R: Read>(
    input: R,
    budget: &Budget,
    sink: &mut dyn RowSink,
) -> Result<(), DataError> {
    let (input, wide) = Watched::new(input, 1);
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(IO_BUFFER, input));
    let mut header = Header::default();
    let mut interrupt = Interrupt::None;
    let result = de.deserialize_seq(ArrayVisitor {
        header: &mut header,
        sink: &mut *sink,
        budget,
        wide: &wide,
        interrupt: &mut interrupt,
    });
    match (result, interrupt) {
        (_, Interrupt::Failed(err)) => return Err(err),
        // `limit` was reached: the rest of the file is not read.
        (_, Interrupt::Stopped) => {}
        (Err(err), Interrupt::None) => return Err(json_error("source", err)),
        (Ok(()), Interrupt::None) => de.end().map_err(|e| json_error("source", e))?,
    }
    if !header.fixed {
        sink.begin(Vec::new())?;
    }
    Ok(())
}

/// Reads a file holding one JSON object per line; blank lines are skipped.
pub fn read_lines<R: BufRead>(
    mut input: R,
    budget: &Budget,
    sink: &mut dyn RowSink,
) -> Result<(), DataError> {
    let mut header = Header::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        budget.reset();
        if input.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let location = format!("source: line {number}");
        let mut de = serde_json::Deserializer::from_slice(text);
        let row = RowSeed {
            header: &mut header,
        }
        .deserialize(&mut de)
        .and_then(|row| de.end().map(|()| row))
        .map_err(|e| json_error(&location, e))?;
        if may_hold_wide(&row) {
            let mut wide = WideInts::new(0);
            wide.feed(text);
            wide.finish();
            if let Some(found) = wide.found() {
                return Err(wide_error(&location, found));
            }
        }
        header.fix(&location, sink)?;
        if sink.row(row)? == Flow::Stop {
            break;
        }
    }
    if !header.fixed {
        sink.begin(Vec::new())?;
    }
    Ok(())
}

/// A serde_json error as input at fault, or an I/O error as the machine's.
fn json_error(location: &str, err: serde_json::Error) -> DataError {
    if err.is_io() {
        return read_error(io::Error::from(err));
    }
    let (line, column) = (err.line(), err.column());
    let message = err.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    if location == "source" {
        DataError::bad_input(format!("source: line {line}, column {column}"), message)
    } else {
        DataError::bad_input(format!("{location}, column {column}"), message)
    }
}

/// An integer the parser would have rounded.
fn wide_error(location: &str, found: &WideInt) -> DataError {
    DataError::bad_input(
        format!("{location}, column {:?}", found.key),
        format!(
            "the integer {} does not fit in 64 bits and would be rounded; \
             write it as a string (\"{}\") to keep it exact",
            found.literal, found.literal
        ),
    )
}

/// The columns: the first object's keys, in its order.
#[derive(Default)]
struct Header {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Set once the first object is read; later keys must be known.
    fixed: bool,
}

impl Header {
    /// After the first object: freezes the columns and announces them.
    fn fix(&mut self, location: &str, sink: &mut dyn RowSink) -> Result<(), DataError> {
        if self.fixed {
            return Ok(());
        }
        self.fixed = true;
        if self.names.is_empty() {
            return Err(DataError::bad_input(
                location,
                "the first object has no keys, so there are no columns",
            ));
        }
        check_columns(location, &self.names)?;
        sink.begin(self.names.clone())
    }
}

/// Why the array visitor stopped before the array's end.
enum Interrupt {
    None,
    Stopped,
    Failed(DataError),
}

struct ArrayVisitor<'a> {
    header: &'a mut Header,
    sink: &'a mut dyn RowSink,
    budget: &'a Budget,
    /// Has seen every byte of each element by the time it is parsed.
    wide: &'a Rc<RefCell<WideInts>>,
    interrupt: &'a mut Interrupt,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(row) = seq.next_element_seed(RowSeed {
            header: &mut *self.header,
        })? {
            self.budget.reset();
            index += 1;
            let location = format!("source: element {index}");
            let wide = match self.wide.borrow().found() {
                Some(found) if found.record == index => Some(wide_error(&location, found)),
                _ => None,
            };
            let step = match wide {
                Some(err) => Err(err),
                None => self
                    .header
                    .fix(&location, self.sink)
                    .and_then(|()| self.sink.row(row)),
            };
            // A sink's answer travels out of serde as an error, the only way
            // to leave a sequence early; the caller reads the real reason
            // from `interrupt`.
            match step {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    *self.interrupt = Interrupt::Stopped;
                    return Err(de::Error::custom("stopped"));
                }
                Err(err) => {
                    *self.interrupt = Interrupt::Failed(err);
                    return Err(de::Error::custom("failed"));
                }
            }
        }
        Ok(())
    }
}

/// Deserializes one object into a row aligned with the header.
struct RowSeed<'h> {
    header: &'h mut Header,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (one row)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let width = self.header.names.len();
        let mut row = vec![Value::Null; width];
        let mut seen = vec![false; width];
        while let Some(i) = map.next_key_seed(KeySeed {
            header: &mut *self.header,
        })? {
            let value: Value = map.next_value()?;
            if i >= row.len() {
                row.resize(i + 1, Value::Null);
                seen.resize(i + 1, false);
            }
            if seen[i] {
                return Err(de::Error::custom(format_args!(
                    "the key {:?} appears twice in one object",
                    self.header.names[i]
                )));
            }
            seen[i] = true;
            row[i] = value;
        }
        Ok(row)
    }
}

/// Turns a key into its column's position, adding columns while the first
/// object is read.
struct KeySeed<'h> {
    header: &'h mut Header,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        if let Some(&i) = self.header.index.get(key) {
            return Ok(i);
        }
        if self.header.fixed {
            return Err(E::custom(format_args!(
                "the key {key:?} is not in the first object, whose keys are the columns"
            )));
        }
        let i = self.header.names.len();
        self.header.names.push(key.to_owned());
        self.header.index.insert(key.to_owned(), i);
        Ok(i)
    }
}

/// Writes rows as a JSON array (`lines == false`) or as JSON lines.
pub struct JsonWriter<W: Write> {
    out: W,
    /// Each column's name, JSON-quoted and followed by `:`, made once.
    keys: Vec<Vec<u8>>,
    lines: bool,
    rows: u64,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W, lines: bool) -> JsonWriter<W> {
        JsonWriter {
            out,
            keys: Vec::new(),
            lines,
            rows: 0,
        }
    }

    pub fn begin(&mut self, columns: &[String]) -> io::Result<()> {
        self.keys = columns
            .iter()
            .map(|c| {
                let mut key = serde_json::to_vec(c)?;
                key.push(b':');
                Ok(key)
            })
            .collect::<io::Result<_>>()?;
        if !self.lines {
            self.out.write_all(b"[")?;
        }
        Ok(())
    }

    pub fn write(&mut self, row: &[Value]) -> io::Result<()> {
        if !self.lines {
            self.out
                .write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        }
        self.out.write_all(b"{")?;
        for (i, (key, value)) in self.keys.iter().zip(row).enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.out.write_all(key)?;
            serde_json::to_writer(&mut self.out, value)?;
        }
        self.out.write_all(b"}")?;
        if self.lines {
            self.out.write_all(b"\n")?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        if !self.lines {
            self.out
                .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::data::input::Budgeted;
    use crate::handlers::data::rows::Collect;
    use serde_json::json;

    fn array(text: &str) -> Result<Collect, DataError> {
        let (input, budget) = Budgeted::new(text.as_bytes(), 1 << 20);
        let mut sink = Collect::default();
        read_array(input, &budget, &mut sink)?;
        Ok(sink)
    }

    fn lines(text: &str) -> Result<Collect, DataError> {
        let (input, budget) = Budgeted::new(text.as_bytes(), 1 << 20);
        let mut sink = Collect::default();
        read_lines(io::BufReader::new(input), &budget, &mut sink)?;
        Ok(sink)
    }

    #[test]
    fn an_array_keeps_key_order_and_fills_missing_keys_with_null() {
        let got = array(
            r#" [ {"z": 1, "a": "x", "m": null}, {"a": "y", "z": 2.5}, {"m": [1, {"k": true}]} ] "#,
        )
        .unwrap();
        assert_eq!(got.columns.unwrap(), vec!["z", "a", "m"]);
        assert_eq!(
            got.rows,
            vec![
                vec![json!(1), json!("x"), json!(null)],
                vec![json!(2.5), json!("y"), json!(null)],
                vec![json!(null), json!(null), json!([1, {"k": true}])],
            ]
        );
    }

    #[test]
    fn lines_read_the_same_rows_and_skip_blank_lines() {
        let got = lines("{\"ü\": 1, \"b\": \"x\"}\n\n  {\"b\": \"y\"}\r\n").unwrap();
        assert_eq!(got.columns.unwrap(), vec!["ü", "b"]);
        assert_eq!(
            got.rows,
            vec![vec![json!(1), json!("x")], vec![json!(null), json!("y")]]
        );
    }

    #[test]
    fn empty_inputs_have_no_columns() {
        for got in [
            array("[]").unwrap(),
            array(" [ ]\n").unwrap(),
            lines("").unwrap(),
            lines("\n\n").unwrap(),
        ] {
            assert_eq!(got.columns, Some(vec![]));
            assert!(got.rows.is_empty());
        }
    }

    #[test]
    fn a_key_the_first_object_lacked_is_refused() {
        let err = array(r#"[{"a": 1}, {"a": 2, "b": 3}]"#).err().unwrap();
        assert!(
            err.to_string().contains("\"b\" is not in the first object"),
            "{err}"
        );
        let err = lines("{\"a\": 1}\n{\"c\": 3}\n").err().unwrap();
        assert!(
            err.to_string().starts_with("source: line 2, column"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_names_where() {
        let err = array("[{\"a\": 1},\n {\"a\": }]").err().unwrap();
        assert!(
            err.to_string().starts_with("source: line 2, column"),
            "{err}"
        );
        assert!(!err.is_retryable());
        let err = array("{\"a\": 1}").err().unwrap();
        assert!(err.to_string().contains("a JSON array of objects"), "{err}");
        let err = array("[1, 2]").err().unwrap();
        assert!(err.to_string().contains("a JSON object"), "{err}");
        let err = array("[{\"a\": 1}] trailing").err().unwrap();
        assert!(err.to_string().contains("trailing"), "{err}");
        let err = lines("{\"a\": 1} {\"a\": 2}\n").err().unwrap();
        assert!(err.to_string().starts_with("source: line 1"), "{err}");
        let err = array("[{\"a\": 1, \"a\": 2}]").err().unwrap();
        assert!(err.to_string().contains("appears twice"), "{err}");
        assert!(array("[{}]").is_err());
    }

    #[test]
    fn an_integer_too_wide_for_64_bits_is_refused_naming_row_and_column() {
        let err = array(r#"[{"id": 1, "n": 5}, {"id": 2, "n": 123456789012345678901}]"#)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "source: element 2, column \"n\": the integer 123456789012345678901 does not fit \
             in 64 bits and would be rounded; write it as a string (\"123456789012345678901\") \
             to keep it exact"
        );
        assert!(!err.is_retryable());
        let err = lines("{\"n\": 1}\n\n{\"n\": 18446744073709551615}\n")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("source: line 3, column \"n\": the integer 18446744073709551615 "),
            "{err}"
        );
        let got = array(r#"[{"n": 9223372036854775807}, {"n": -9223372036854775808}]"#).unwrap();
        assert_eq!(got.rows, vec![vec![json!(i64::MAX)], vec![json!(i64::MIN)]]);
        // Past the rows a limit keeps, nothing is judged.
        let (input, budget) =
            Budgeted::new(&b"[{\"n\": 1}, {\"n\": 99999999999999999999}]"[..], 1 << 20);
        let mut sink = Collect {
            stop_after: Some(1),
            ..Collect::default()
        };
        read_array(input, &budget, &mut sink).unwrap();
    }

    #[test]
    fn reading_an_array_stops_early_without_reading_the_rest() {
        let (input, budget) =
            Budgeted::new(&b"[{\"a\": 1}, {\"a\": 2}, this is never read"[..], 1 << 20);
        let mut sink = Collect {
            stop_after: Some(2),
            ..Collect::default()
        };
        read_array(input, &budget, &mut sink).unwrap();
        assert_eq!(sink.rows.len(), 2);
    }

    #[test]
    fn a_record_over_budget_is_refused() {
        // Reads come in IO_BUFFER pieces, so the record is made larger
        // than a few of them.
        let big = format!("[{{\"a\": \"{}\"}}]", "x".repeat(4 * IO_BUFFER));
        let (input, budget) = Budgeted::new(big.as_bytes(), 1000);
        let err = read_array(input, &budget, &mut Collect::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    fn write(lines: bool, rows: &[Vec<Value>]) -> String {
        let mut w = JsonWriter::new(Vec::new(), lines);
        w.begin(&["a".to_string(), "ключ \"q\"".to_string()])
            .unwrap();
        for row in rows {
            w.write(row).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_writer_writes_arrays_and_lines_that_read_back() {
        let rows = vec![
            vec![json!(1), json!("x\ny")],
            vec![json!(null), json!({"n": [1.5]})],
        ];
        let text = write(false, &rows);
        assert_eq!(
            text,
            "[\n{\"a\":1,\"ключ \\\"q\\\"\":\"x\\ny\"},\n{\"a\":null,\"ключ \\\"q\\\"\":{\"n\":[1.5]}}\n]\n"
        );
        assert_eq!(array(&text).unwrap().rows, rows);
        let text = write(true, &rows);
        assert_eq!(text.lines().count(), 2);
        assert_eq!(lines(&text).unwrap().rows, rows);
        assert_eq!(write(false, &[]), "[]\n");
        assert_eq!(write(true, &[]), "");
    }
}
