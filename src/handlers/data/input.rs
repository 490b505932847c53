//! Reading a source with bounded memory: the per-record byte budget every
//! reader shares, and the one rule for which read errors are the input's
//! fault. Below the formats (`csv`, `json`) and the dispatcher above them
//! (`format`), so none of them imports another.
//!
//! Design choice: memory is bounded per *record*, not per file. Each reader
//! holds one record at a time, and a record larger than
//! [`MAX_RECORD_BYTES`] is refused rather than buffered, so neither a huge
//! file nor a file with one enormous line can grow the daemon without bound.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::error::DataError;

/// The largest single record (CSV record, JSON object, JSON line) read.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Read and write buffers: big enough that system calls are not the cost.
pub const IO_BUFFER: usize = 64 << 10;

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
