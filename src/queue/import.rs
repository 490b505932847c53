//! Taking records of another system over as jobs, each once: the admin
//! socket's `import` and the PocketBase follower both come through here.
//!
//! Unlike `enqueue`, a batch is not all or nothing: each record is checked
//! on its own (the same checks as an enqueue), a record that fails them is
//! answered with the reason and left where it is, and the rest are stored
//! together with their ledger entries (see `store::import`).

use super::job::{Job, NewJob, RunAt};
use super::{Queue, QueueError, enqueue};
use crate::store::import::{ImportJob, Imported, unique_key};

/// Largest batch of records one `import` may carry.
pub const MAX_IMPORT_RECORDS: usize = 1_000;

/// Longest record id (and source name), in characters.
pub const MAX_RECORD_ID_CHARS: usize = 100;

/// Whether `id` may name a record (or a source's collection): 1 to 100
/// of `[A-Za-z0-9_-]`, safe in a unique key, a URL and a log line.
pub fn plain_id(id: &str) -> bool {
    let n = id.chars().count();
    (1..=MAX_RECORD_ID_CHARS).contains(&n)
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One record offered to the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The record's id in its source.
    pub record_id: String,
    /// The job it becomes; the queue gives it the record's unique key.
    pub job: NewJob,
    /// Attempts it already used in its source.
    pub attempts: u32,
}

/// What became of one offer.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// Stored now as this job (pending, or dead when its attempts were used
    /// up). On a dry run, `None`: it would be stored.
    Stored(Option<Box<Job>>),
    /// Taken over before, as this job.
    Already { job_id: String },
    /// Not taken: why.
    Refused(String),
}

impl Queue {
    /// Takes `offers` from `source` over: checks each, stores the good
    /// ones with their ledger entries, wakes the dispatcher. With
    /// `dry_run`, checks and looks the records up in the ledger only.
    /// A record's `run_at` is never later than now.
    pub async fn import(
        &self,
        source: &str,
        offers: Vec<Offer>,
        dry_run: bool,
    ) -> Result<Vec<Taken>, QueueError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(QueueError::ShuttingDown);
        }
        let now = self.inner.clock.now_ms();
        let config = &self.inner.config;
        let mut out: Vec<Option<Taken>> = vec![None; offers.len()];
        let mut good: Vec<(usize, ImportJob)> = Vec::with_capacity(offers.len());
        for (i, offer) in offers.into_iter().enumerate() {
            let mut job = offer.job;
            job.unique_key = Some(unique_key(source, &offer.record_id));
            if matches!(job.when, RunAt::At(at) if at > now) {
                job.when = RunAt::Now;
            }
            match enqueue::validate(
                &job,
                &self.inner.registry,
                config.max_payload_bytes,
                "",
                now,
            ) {
                Err(e) => out[i] = Some(Taken::Refused(e.to_string())),
                Ok(()) => good.push((
                    i,
                    ImportJob {
                        source: source.to_string(),
                        record_id: offer.record_id,
                        job,
                        attempts: offer.attempts,
                    },
                )),
            }
        }
        if dry_run {
            let ids = good.iter().map(|(_, r)| r.record_id.clone()).collect();
            let known = self.inner.store.imported(source.to_string(), ids).await?;
            for (i, record) in good {
                out[i] = Some(match known.get(&record.record_id) {
                    Some(job_id) => Taken::Already {
                        job_id: job_id.clone(),
                    },
                    None => Taken::Stored(None),
                });
            }
        } else if !good.is_empty() {
            let (at, records): (Vec<usize>, Vec<ImportJob>) = good.into_iter().unzip();
            let stored = self
                .inner
                .store
                .import(records, now, config.max_pending)
                .await?;
            let mut fresh = false;
            for (i, imported) in at.into_iter().zip(stored) {
                out[i] = Some(match imported {
                    Imported::Stored(job) => {
                        fresh = true;
                        Taken::Stored(Some(job))
                    }
                    Imported::Already { job_id } => Taken::Already { job_id },
                });
            }
            if fresh {
                self.inner.wake.notify_one();
                self.touch();
            }
        }
        out.into_iter()
            .map(|t| t.ok_or_else(|| QueueError::Invalid("an import lost its answer".into())))
            .collect()
    }
}
