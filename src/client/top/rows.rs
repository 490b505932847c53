//! The rows each pane lists, in the order it lists them, after the filter.
//!
//! Drawing and selection read the same lists from here, so the row a key
//! acts on is always the row the operator sees highlighted.

use super::state::{Failure, Running, State};
use super::wire::{CronRow, TypeRow};

/// The panes that list rows, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Queue,
    Running,
    Crons,
    Failures,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Queue, Pane::Running, Pane::Crons, Pane::Failures];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn previous(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Queue => "Queue",
            Pane::Running => "Running",
            Pane::Crons => "Crons",
            Pane::Failures => "Recent failures",
        }
    }
}

/// Whether `text` contains the filter, ignoring case.
fn matches(filter: Option<&str>, texts: &[&str]) -> bool {
    match filter {
        None => true,
        Some(f) => {
            let f = f.to_lowercase();
            texts.iter().any(|t| t.to_lowercase().contains(&f))
        }
    }
}

pub fn queue<'a>(state: &'a State, filter: Option<&str>) -> Vec<&'a TypeRow> {
    state
        .stats
        .types
        .iter()
        .filter(|t| matches(filter, &[&t.job_type]))
        .collect()
}

/// Longest running first: the one an operator is most likely asking about.
pub fn running<'a>(state: &'a State, filter: Option<&str>) -> Vec<&'a Running> {
    let mut rows: Vec<&Running> = state
        .running
        .values()
        .filter(|r| matches(filter, &[&r.job_type, &r.name]))
        .collect();
    rows.sort_by(|a, b| match (a.started, b.started) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    });
    rows
}

pub fn crons<'a>(state: &'a State, filter: Option<&str>) -> Vec<&'a CronRow> {
    state
        .crons
        .iter()
        .filter(|c| matches(filter, &[&c.id]))
        .collect()
}

/// Newest first.
pub fn failures<'a>(state: &'a State, filter: Option<&str>) -> Vec<&'a Failure> {
    state
        .failures
        .iter()
        .filter(|f| matches(filter, &[&f.job_type, &f.name]))
        .collect()
}

/// The key of each row of `pane`: a type, a job id or a cron id.
pub fn keys(pane: Pane, state: &State, filter: Option<&str>) -> Vec<String> {
    match pane {
        Pane::Queue => queue(state, filter)
            .into_iter()
            .map(|t| t.job_type.clone())
            .collect(),
        Pane::Running => running(state, filter)
            .into_iter()
            .map(|r| r.id.clone())
            .collect(),
        Pane::Crons => crons(state, filter)
            .into_iter()
            .map(|c| c.id.clone())
            .collect(),
        Pane::Failures => failures(state, filter)
            .into_iter()
            .map(|f| f.id.clone())
            .collect(),
    }
}

/// A pane's selection: the row's key, and its position as a fallback for
/// when that row is gone (a job that ended selects its neighbour).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub key: Option<String>,
    pub index: usize,
}

impl Selection {
    /// The selected row's position among `keys`.
    pub fn resolve(&self, keys: &[String]) -> Option<usize> {
        if keys.is_empty() {
            return None;
        }
        let by_key = self
            .key
            .as_ref()
            .and_then(|k| keys.iter().position(|x| x == k));
        Some(by_key.unwrap_or(self.index.min(keys.len() - 1)))
    }

    /// Moves by `delta` rows within `keys`.
    pub fn shift(&mut self, keys: &[String], delta: isize) {
        let Some(at) = self.resolve(keys) else {
            *self = Selection::default();
            return;
        };
        let to = (at as isize + delta).clamp(0, keys.len() as isize - 1) as usize;
        self.index = to;
        self.key = Some(keys[to].clone());
    }
}
