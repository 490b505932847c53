//! A rolling tail of a command's output: the last [`TAIL_BYTES`] of a
//! stream, however much the command writes.
//!
//! Bytes, not lines, are kept, so one enormous line cannot defeat the bound;
//! the cost is that the kept text may start mid-line (and is cut at a
//! character boundary when shown).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How much of each stream is kept for the log and the error.
pub const TAIL_BYTES: usize = 4096;

/// The last bytes of one stream and how many were written in all.
#[derive(Debug, Default)]
pub struct Tail {
    kept: VecDeque<u8>,
    total: u64,
}

impl Tail {
    pub fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (self.kept.len() + chunk.len()).saturating_sub(TAIL_BYTES);
        self.kept.drain(..overflow);
        self.kept.extend(chunk);
    }

    /// How many bytes were written in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept bytes as text: invalid UTF-8 replaced, and a character cut
    /// in half by the rolling window dropped.
    pub fn text(&self) -> String {
        let (a, b) = self.kept.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let start = if self.total > self.kept.len() as u64 {
            // Skip UTF-8 continuation bytes (0b10xx_xxxx) left over from a
            // character whose first byte fell out of the window.
            bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xC0) == 0x80)
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// `name` and the kept text, headed by how much was cut:
    /// `stdout (last 4096 of 10000 bytes):` then the text.
    pub fn describe(&self, name: &str) -> String {
        if self.total == 0 {
            return format!("{name}: (empty)");
        }
        let text = self.text();
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if self.total > self.kept.len() as u64 {
            format!(
                "{name} (last {} of {} bytes):\n{text}",
                self.kept.len(),
                self.total
            )
        } else {
            format!("{name}:\n{text}")
        }
    }
}

/// Both streams' tails, shared by the tasks draining the pipes and whoever
/// reports the outcome (including the guard that reports an abandoned job).
#[derive(Debug, Default)]
pub struct Output {
    stdout: Mutex<Tail>,
    stderr: Mutex<Tail>,
}

impl Output {
    pub fn stdout(&self) -> MutexGuard<'_, Tail> {
        // A panic while holding the lock cannot leave a tail half-updated
        // in a way that matters; keep reporting what is there.
        self.stdout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stderr(&self) -> MutexGuard<'_, Tail> {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Both tails, for an error message.
    pub fn describe(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout().describe("stdout"),
            self.stderr().describe("stderr")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut t = Tail::default();
        t.push(b"hello\n");
        t.push(b"world\n");
        assert_eq!(t.text(), "hello\nworld\n");
        assert_eq!(t.describe("stdout"), "stdout:\nhello\nworld");
        assert_eq!(Tail::default().describe("stderr"), "stderr: (empty)");
    }

    #[test]
    fn long_output_keeps_only_the_last_bytes() {
        let mut t = Tail::default();
        for i in 0..10_000 {
            t.push(format!("{i:05}\n").as_bytes());
        }
        let text = t.text();
        assert_eq!(text.len(), TAIL_BYTES);
        assert!(text.ends_with("09999\n"));
        assert!(
            t.describe("stdout")
                .starts_with("stdout (last 4096 of 60000 bytes):\n")
        );
        // One chunk bigger than the window.
        let mut t = Tail::default();
        t.push(&vec![b'x'; 3 * TAIL_BYTES]);
        t.push(b"end");
        assert_eq!(t.text().len(), TAIL_BYTES);
        assert!(t.text().ends_with("xend"));
    }

    #[test]
    fn a_character_cut_by_the_window_is_dropped() {
        let mut t = Tail::default();
        // 'é' is two bytes: the window first holds whole characters, and
        // one more byte shifts it to start in the middle of one.
        t.push("é".repeat(TAIL_BYTES).as_bytes());
        let text = t.text();
        assert!(!text.contains('\u{FFFD}'), "{text}");
        assert_eq!(text.chars().count(), TAIL_BYTES / 2);
        t.push(b"!");
        let text = t.text();
        assert!(!text.contains('\u{FFFD}'));
        assert!(text.ends_with("é!"));
    }
}
