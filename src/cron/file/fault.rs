//! What is wrong with a crons file: one `Fault` per problem, gathered into
//! `LoadErrors` so that an operator fixes every fault in one pass instead of
//! one per restart.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem, located as precisely as the loader could: the file, the
/// line (1-based) and the dotted key (`cron.nightly.schedule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `None` only for faults outside any file (a bad `CRON_TZ`).
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// Empty when the fault is about the file as a whole (unreadable, bad
    /// TOML syntax).
    pub key: String,
    pub message: String,
}

impl Fault {
    pub(crate) fn at(
        file: &Path,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Fault {
        Fault {
            file: Some(file.to_path_buf()),
            line,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Fault {
    /// `FILE:LINE: KEY: MESSAGE`, the shape compilers use, so editors can
    /// jump to the line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every fault found while loading, in file order and then line order.
/// Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors {
    pub faults: Vec<Fault>,
}

impl fmt::Display for LoadErrors {
    /// One fault per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
