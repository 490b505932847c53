//! File formats: which one a path names, and the entry points that read a
//! whole file into a [`RowSink`] or write rows into a file, whatever the
//! format.
//!
//! Design choice: memory is bounded per *record*, not per file. Each reader
//! holds one record at a time, and a record larger than
//! [`MAX_RECORD_BYTES`] is refused rather than buffered, so neither a huge
//! file nor a file with one enormous line can grow the daemon without bound.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;
use std::rc::Rc;

use serde_json::Value;

use super::error::DataError;
use super::rows::RowSink;
use super::{csv, json};

/// The largest single record (CSV record, JSON object, JSON line) read.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Read and write buffers: big enough that system calls are not the cost.
pub const IO_BUFFER: usize = 64 << 10;

/// A file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header row, then one record per row (RFC 4180 quoting).
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The format named by `path`'s extension, ASCII case ignored.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Reads every record of `file` into `sink`.
pub fn read(file: File, format: Format, sink: &mut dyn RowSink) -> Result<(), DataError> {
    let (input, budget) = Budgeted::new(file, MAX_RECORD_BYTES);
    match format {
        Format::Csv => csv::read(input, &budget, sink),
        Format::Json => json::read_array(BufReader::with_capacity(IO_BUFFER, input), &budget, sink),
        Format::Jsonl => {
            json::read_lines(BufReader::with_capacity(IO_BUFFER, input), &budget, sink)
        }
    }
}

/// Writes rows into a file in one format.
pub enum FileWriter {
    // Boxed: the csv writer's state is large, and the enum is moved around.
    Csv(Box<csv::CsvWriter<File>>),
    Json(json::JsonWriter<BufWriter<File>>),
}

impl FileWriter {
    pub fn new(file: File, format: Format) -> FileWriter {
        match format {
            Format::Csv => FileWriter::Csv(Box::new(csv::CsvWriter::new(file))),
            Format::Json | Format::Jsonl => FileWriter::Json(json::JsonWriter::new(
                BufWriter::with_capacity(IO_BUFFER, file),
                format == Format::Jsonl,
            )),
        }
    }

    pub fn begin(&mut self, columns: &[String]) -> io::Result<()> {
        match self {
            FileWriter::Csv(w) => w.begin(columns),
            FileWriter::Json(w) => w.begin(columns),
        }
    }

    pub fn write(&mut self, row: &[Value]) -> io::Result<()> {
        match self {
            FileWriter::Csv(w) => w.write(row),
            FileWriter::Json(w) => w.write(row),
        }
    }

    /// Writes what closes the format, flushes, and gives the file back
    /// for syncing.
    pub fn finish(self) -> io::Result<File> {
        match self {
            FileWriter::Csv(w) => w.finish(),
            FileWriter::Json(w) => w.finish()?.into_inner().map_err(|e| e.into_error()),
        }
    }
}

/// The error a [`Budgeted`] reader gives when one record is too large.
#[derive(Debug, thiserror::Error)]
#[error("a single record is larger than {} MiB", MAX_RECORD_BYTES >> 20)]
pub struct RecordTooLarge;

/// Counts the bytes read since the last [`Budget::reset`], and fails the
/// read once they pass the limit.
pub struct Budgeted<R> {
    inner: R,
    budget: Budget,
}

/// The handle a reader resets after each record.
#[derive(Clone)]
pub struct Budget {
    used: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Budgeted<R> {
    pub fn new(inner: R, limit: u64) -> (Budgeted<R>, Budget) {
        let budget = Budget {
            used: Rc::new(Cell::new(0)),
            limit,
        };
        (
            Budgeted {
                inner,
                budget: budget.clone(),
            },
            budget,
        )
    }
}

impl Budget {
    pub fn reset(&self) {
        self.used.set(0);
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget.used.get() > self.budget.limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLarge));
        }
        let n = self.inner.read(buf)?;
        self.budget.used.set(self.budget.used.get() + n as u64);
        Ok(n)
    }
}

/// A read error: the record budget is the input's fault (permanent), any
/// other I/O error is the machine's (retried).
pub fn read_error(err: io::Error) -> DataError {
    if err.get_ref().is_some_and(|e| e.is::<RecordTooLarge>()) {
        DataError::bad_input("source", RecordTooLarge.to_string())
    } else {
        DataError::io("reading the source", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_names_the_format() {
        assert_eq!(Format::from_path(Path::new("a/b.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("b.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("b.jsonl")), Some(Format::Jsonl));
        assert_eq!(Format::from_path(Path::new("b.ndjson")), None);
        assert_eq!(Format::from_path(Path::new("b")), None);
    }

    #[test]
    fn a_budget_stops_a_runaway_record_and_resets_per_record() {
        let data = [b'x'; 100];
        let (mut input, budget) = Budgeted::new(&data[..], 10);
        let mut buf = [0u8; 8];
        input.read_exact(&mut buf).unwrap();
        budget.reset();
        input.read_exact(&mut buf).unwrap();
        input.read_exact(&mut buf).unwrap();
        let err = input.read(&mut buf).unwrap_err();
        assert!(matches!(read_error(err), DataError::BadInput { .. }));
    }
}
