//! The `system_queue` minute in one transaction: heartbeat, extend the
//! reservations of running jobs, record the run, recover what dead or
//! silent holders left, and claim a batch.
//!
//! One write instead of seven is what lets an idle daemon sleep: each
//! separate write wakes the writer thread and the task awaiting it, and an
//! idle minute should cost a handful of wake-ups, not dozens.

use super::crons::{begin_run_on, finish_run_on, settle_orphan_runs_on};
use super::history::prune_on;
use super::instances::{heartbeat_on, instances_on, remove_instances_on};
use super::jobs::{claim_on, claim_quotas_on, extend_on, recover_on};
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::store::run::RunStatus;
use crate::store::tick::{Tick, Ticked, within};

impl SqliteStore {
    pub async fn tick(&self, tick: Tick) -> Result<Ticked, StoreError> {
        // Not durable: a system_queue run lost to a power cut only means
        // the minute is drained again, and an fsync a minute is a wake-up
        // an idle daemon need not pay.
        self.write(Mode::Grouped, move |conn, defaults| {
            let now = tick.now;
            let own_id = tick.instance.id.clone();
            heartbeat_on(conn, tick.instance, now)?;
            let mut out = Ticked {
                lost: extend_on(conn, tick.leases, now)?,
                fired: true,
                ..Ticked::default()
            };
            if let Some(run) = tick.run {
                match begin_run_on(conn, run)? {
                    Some(run) => out.run = Some(run),
                    None => {
                        out.fired = false;
                        return Ok(out);
                    }
                }
            }
            let dead: Vec<String> = instances_on(conn)?
                .iter()
                .filter(|row| row.id != own_id && (tick.judge)(row))
                .map(|row| row.id.clone())
                .collect();
            let dead_json = serde_json::to_string(&dead).unwrap_or_else(|_| "[]".into());
            out.recovered = recover_on(conn, defaults, tick.stale_before, &dead_json, now)?;
            remove_instances_on(conn, &dead)?;
            out.removed_instances = dead.len();
            out.orphan_runs = settle_orphan_runs_on(conn, now)?;
            // Types with a limit first, within their quotas, so a busy
            // unlimited type cannot crowd them out of the batch.
            let quotas = within(&tick.quotas, tick.limit);
            out.claimed = claim_quotas_on(conn, defaults, &own_id, &quotas, now)?;
            let room = tick.limit.saturating_sub(out.claimed.len());
            let more = claim_on(conn, defaults, &own_id, &tick.types, room, now)?;
            out.claimed.extend(more);
            if let Some(prune) = &tick.prune {
                out.pruned = prune_on(conn, prune)?;
            }
            if out.claimed.is_empty()
                && let Some(run) = &out.run
            {
                out.run = finish_run_on(conn, run.id, RunStatus::Ok, None, now)?;
            }
            Ok(out)
        })
        .await
    }
}
