//! The `system_queue` minute in one transaction, as on SQLite: heartbeat
//! (and a fresh clock offset), extend the reservations of running jobs,
//! record the run, recover what dead or silent holders left, fold the
//! count deltas, and claim a batch.
//!
//! With many nodes every one of them ticks each minute, but only the node
//! that records the minute's run (the unique `(cron_id, scheduled_for)`)
//! goes past the heartbeat; the others' ticks are a heartbeat and an
//! extend.

use super::PgStore;
use super::claim::{claim_on, claim_quotas_on};
use super::crons::{begin_run_on, finish_run_on, settle_orphan_runs_on};
use super::history::prune_on;
use super::instances::{heartbeat_on, instances_on, remove_instances_on};
use super::listings::compact_counts;
use super::maintenance::{extend_on, recover_on};
use crate::store::StoreError;
use crate::store::run::RunStatus;
use crate::store::tick::{Tick, Ticked, within};

impl PgStore {
    pub async fn tick(&self, tick: Tick) -> Result<Ticked, StoreError> {
        let mut client = self.client().await?;
        self.measure_offset(&client).await?;
        let f = self.frame();
        let offset = self.clock_offset_ms();
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        // Not durable, as on SQLite: a lost minute is only drained again.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| self.err(&e))?;
        let now = tick.now;
        let at = f.db(now);
        let own_id = tick.instance.id.clone();
        let e = |e: tokio_postgres::Error| self.err(&e);
        heartbeat_on(&tx, tick.instance, now, offset, f)
            .await
            .map_err(e)?;
        let mut out = Ticked {
            lost: extend_on(&tx, tick.leases, at).await.map_err(e)?,
            fired: true,
            ..Ticked::default()
        };
        if let Some(run) = tick.run {
            match begin_run_on(&tx, run, f).await.map_err(e)? {
                Some(run) => out.run = Some(run),
                None => {
                    out.fired = false;
                    tx.commit().await.map_err(e)?;
                    return Ok(out);
                }
            }
        }
        let dead: Vec<String> = instances_on(&tx, f)
            .await
            .map_err(e)?
            .iter()
            .filter(|row| row.id != own_id && (tick.judge)(row))
            .map(|row| row.id.clone())
            .collect();
        out.recovered = recover_on(&tx, self.defaults(), tick.stale_before, &dead, now, f)
            .await
            .map_err(e)?;
        remove_instances_on(&tx, &dead).await.map_err(e)?;
        out.removed_instances = dead.len();
        out.orphan_runs = settle_orphan_runs_on(&tx, at).await.map_err(e)?;
        compact_counts(&tx).await.map_err(e)?;
        // Types with a limit first, within their quotas, as on SQLite.
        let quotas = within(&tick.quotas, tick.limit);
        out.claimed = claim_quotas_on(&tx, self.defaults(), &own_id, &quotas, now, f)
            .await
            .map_err(e)?;
        let room = tick.limit.saturating_sub(out.claimed.len());
        let more = claim_on(&tx, self.defaults(), &own_id, &tick.types, room, now, f)
            .await
            .map_err(e)?;
        out.claimed.extend(more);
        if let Some(prune) = &tick.prune {
            out.pruned = prune_on(&tx, prune, f).await.map_err(e)?;
        }
        if out.claimed.is_empty()
            && let Some(run) = &out.run
        {
            out.run = finish_run_on(&tx, run.id, RunStatus::Ok, None, at, f)
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        Ok(out)
    }
}
