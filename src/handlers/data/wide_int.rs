//! Integer literals too wide for 64 bits in JSON input, found in the text.
//!
//! serde_json reads an integer beyond 64 bits as the nearest f64, and SQLite
//! holds no integer wider than i64 (a larger u64 becomes a REAL), so
//! `123456789012345678901` would be imported rounded and nobody told. The
//! parser gives no sign of it: a rounded integer and `1.2e20` arrive alike.
//! So [`WideInts`] watches the same bytes go by, tokenizing just enough
//! JSON (strings, nesting, keys, number literals) to name the record and
//! column of the first integer literal outside i64; the reader turns that
//! into an error once the parser has reached that record.
//!
//! Design choice: refuse rather than keep the digits as text. Keeping them
//! would give one column numbers or strings depending on each value's size,
//! and could not work for a number nested in an array or object; an error
//! naming the place lets the user quote the value (a JSON string is kept
//! exactly) or fix what produced the file.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use serde_json::Value;

/// Longest key or literal kept for the error message.
const KEPT: usize = 200;

/// The first too-wide integer seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WideInt {
    /// Which record (object) it is in, counting from 1.
    pub record: u64,
    /// The record's key (column) it is under.
    pub key: String,
    /// The literal, as written (cut short when very long).
    pub literal: String,
}

/// Follows JSON text fed to it in pieces.
#[derive(Debug)]
pub struct WideInts {
    /// How many containers are open around a record's object: 1 in an
    /// array of objects, 0 for JSON lines.
    row_depth: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The string being read, kept when it may be a record's key.
    string: Option<Vec<u8>>,
    /// The last string read at key depth: the key, if a `:` follows.
    last_string: Option<Vec<u8>>,
    key: Vec<u8>,
    in_number: bool,
    /// The number being read (reused from one to the next).
    number: Vec<u8>,
    integer: bool,
    record: u64,
    found: Option<WideInt>,
}

impl WideInts {
    pub fn new(row_depth: usize) -> WideInts {
        WideInts {
            row_depth,
            depth: 0,
            in_string: false,
            escaped: false,
            string: None,
            last_string: None,
            key: Vec::new(),
            in_number: false,
            number: Vec::new(),
            integer: false,
            record: 0,
            found: None,
        }
    }

    /// The first too-wide integer so far.
    pub fn found(&self) -> Option<&WideInt> {
        self.found.as_ref()
    }

    /// Ends a number the input may end with.
    pub fn finish(&mut self) {
        self.end_number();
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.found.is_some() {
            return;
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                // Most of a JSON file is string contents: skip to where
                // the string may end, unless it is a key being kept.
                if self.string.is_none() && !self.escaped {
                    match bytes[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(n) => i += n,
                        None => return,
                    }
                }
                self.string_byte(bytes[i]);
                i += 1;
                continue;
            }
            let b = bytes[i];
            i += 1;
            if self.in_number {
                match b {
                    b'0'..=b'9' | b'-' | b'+' => {
                        if self.number.len() < KEPT {
                            self.number.push(b);
                        }
                        continue;
                    }
                    b'.' | b'e' | b'E' => {
                        self.integer = false;
                        continue;
                    }
                    _ => self.end_number(),
                }
            }
            let key_depth = self.row_depth + 1;
            match b {
                b'"' => {
                    self.in_string = true;
                    self.string = (self.depth == key_depth).then(|| {
                        let mut buf = self.last_string.take().unwrap_or_default();
                        buf.clear();
                        buf
                    });
                }
                b'{' | b'[' => {
                    if self.depth == self.row_depth && b == b'{' {
                        self.record += 1;
                        self.key.clear();
                    }
                    self.depth += 1;
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b':' if self.depth == key_depth => {
                    if let Some(key) = self.last_string.take() {
                        self.last_string = Some(std::mem::replace(&mut self.key, key));
                    }
                }
                b'-' | b'0'..=b'9' if self.depth > self.row_depth => {
                    self.in_number = true;
                    self.number.clear();
                    self.number.push(b);
                    self.integer = true;
                }
                _ => {}
            }
        }
    }

    fn string_byte(&mut self, b: u8) {
        let ends = !self.escaped && b == b'"';
        self.escaped = !self.escaped && b == b'\\';
        if ends {
            self.in_string = false;
            self.last_string = self.string.take();
        } else if let Some(string) = &mut self.string
            && string.len() < KEPT
        {
            string.push(b);
        }
    }

    fn end_number(&mut self) {
        if !std::mem::take(&mut self.in_number) || !self.integer || self.found.is_some() {
            return;
        }
        let number = &self.number;
        let fits = number.len() < 19
            || std::str::from_utf8(number)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some();
        if !fits {
            self.found = Some(WideInt {
                record: self.record,
                key: String::from_utf8_lossy(&self.key).into_owned(),
                literal: String::from_utf8_lossy(number).into_owned(),
            });
        }
    }
}

/// Whether a parsed row could hold an integer the parser rounded: a u64
/// beyond i64, or an integral f64 of 2^63 or more. Cheap, so JSON lines are
/// scanned only when it says so; `1e20` says so too, the scan tells them apart.
pub fn may_hold_wide(row: &[Value]) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::Number(n) => {
                n.as_i64().is_none()
                    && (n.is_u64()
                        || n.as_f64().is_some_and(|f| {
                            f.fract() == 0.0 && f.abs() >= 9_223_372_036_854_775_808.0
                        }))
            }
            Value::Array(items) => items.iter().any(value),
            Value::Object(map) => map.values().any(value),
            _ => false,
        }
    }
    row.iter().any(value)
}

/// A reader that feeds what it reads to a [`WideInts`] shared with the
/// code that reads the parsed records.
pub struct Watched<R> {
    inner: R,
    watch: Rc<RefCell<WideInts>>,
}

impl<R: Read> Watched<R> {
    pub fn new(inner: R, row_depth: usize) -> (Watched<R>, Rc<RefCell<WideInts>>) {
        let watch = Rc::new(RefCell::new(WideInts::new(row_depth)));
        (
            Watched {
                inner,
                watch: Rc::clone(&watch),
            },
            watch,
        )
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut watch = self.watch.borrow_mut();
        watch.feed(&buf[..n]);
        if n == 0 {
            watch.finish();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(row_depth: usize, text: &str) -> Option<WideInt> {
        // Fed a byte at a time, as the worst split of reads would.
        let mut w = WideInts::new(row_depth);
        for b in text.as_bytes() {
            w.feed(std::slice::from_ref(b));
        }
        w.finish();
        w.found().cloned()
    }

    #[test]
    fn finds_the_record_and_column_of_a_wide_integer() {
        let text = r#"[{"a": 1, "n": 9223372036854775807},
                      {"a": -9223372036854775808, "n": 2},
                      {"a": 3, "n": 18446744073709551616, "z": 1}]"#;
        assert_eq!(
            scan(1, text),
            Some(WideInt {
                record: 3,
                key: "n".to_string(),
                literal: "18446744073709551616".to_string()
            })
        );
        let found = scan(0, r#"{"x\"y": [1, {"deep": -9223372036854775809}]}"#).unwrap();
        assert_eq!(found.key, "x\\\"y");
        assert_eq!(found.literal, "-9223372036854775809");
        assert_eq!(found.record, 1);
    }

    #[test]
    fn floats_strings_and_keys_that_look_like_numbers_are_not_wide() {
        for text in [
            r#"[{"n": 123456789012345678901.5}]"#,
            r#"[{"n": 1e400}]"#,
            r#"[{"n": 12345678901234567890123E2}]"#,
            r#"[{"n": "123456789012345678901234567890"}]"#,
            r#"[{"123456789012345678901234567890": 1}]"#,
            r#"[{"s": "a \"quoted\" 99999999999999999999999 inside"}]"#,
            r#"[{"n": 18446744073}]"#,
        ] {
            assert_eq!(scan(1, text), None, "{text}");
        }
    }

    #[test]
    fn only_rows_with_huge_whole_numbers_may_hold_one() {
        use serde_json::json;
        assert!(!may_hold_wide(&[
            json!(i64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!("9")
        ]));
        assert!(!may_hold_wide(&[json!(9.2e18)]));
        assert!(may_hold_wide(&[json!(u64::MAX)]));
        assert!(may_hold_wide(&[json!(1e20)]));
        assert!(may_hold_wide(&[json!(-9.3e18)]));
        assert!(may_hold_wide(&[json!({"a": [1, 2e19]})]));
    }

    #[test]
    fn a_reader_feeds_the_watch() {
        let text = br#"[{"n": 99999999999999999999}]"#;
        let (mut r, watch) = Watched::new(&text[..], 1);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        assert_eq!(watch.borrow().found().unwrap().key, "n");
    }
}
