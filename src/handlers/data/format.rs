//! File formats: which one a path names, and the entry points that read a
//! whole file into a [`RowSink`] or write rows into a file, whatever the
//! format. This dispatcher sits above the formats (`csv`, `json`), which
//! share only what sits below them (`input`, `rows`).
//!
//! Output goes through a [`Charged`] writer, so every byte written counts
//! against DATA_MAX_BYTES as it is written (see the `quota` module).

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::Path;

use serde_json::Value;

use super::error::DataError;
use super::input::{Budgeted, IO_BUFFER, MAX_RECORD_BYTES};
use super::quota::Charged;
use super::rows::RowSink;
use super::{csv, json};

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
        Format::Json => json::read_array(input, &budget, sink),
        Format::Jsonl => {
            json::read_lines(BufReader::with_capacity(IO_BUFFER, input), &budget, sink)
        }
    }
}

/// Writes rows into a file in one format.
pub enum FileWriter {
    // Boxed: the csv writer's state is large, and the enum is moved around.
    Csv(Box<csv::CsvWriter<Charged<File>>>),
    Json(json::JsonWriter<BufWriter<Charged<File>>>),
}

impl FileWriter {
    /// A writer of `format` into `file`; `formula_escape` is the CSV
    /// writer's (see the `csv` module), and means nothing to JSON.
    pub fn new(file: Charged<File>, format: Format, formula_escape: bool) -> FileWriter {
        match format {
            Format::Csv => FileWriter::Csv(Box::new(csv::CsvWriter::new(file, formula_escape))),
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
    pub fn finish(self) -> io::Result<Charged<File>> {
        match self {
            FileWriter::Csv(w) => w.finish(),
            FileWriter::Json(w) => w.finish()?.into_inner().map_err(|e| e.into_error()),
        }
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
}
