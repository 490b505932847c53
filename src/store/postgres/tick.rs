//! The `system_queue` minute, as on SQLite one store operation: heartbeat
//! (and a fresh clock offset), extend the reservations of running jobs,
//! record the run, recover what dead or silent holders left, fold the
//! count deltas, claim a batch (types with a per-type limit first, each
//! within its quota), and one round of pruning of the history and of dead
//! jobs.
//!
//! It is one statement, the schema's `cronq_tick`, so one round trip: an
//! idle daemon's minute is a few wake-ups, not the dozen that thirteen
//! statements cost (docs/PERFORMANCE.md, "Idle"). Its server's clock
//! reading, timed on this side, is the heartbeat's offset measurement; the
//! tick's own instants are moved by the offset measured before it.
//!
//! Which other instances are dead is `Tick::judge`'s to say, here, after
//! the statement has returned them. When one may be (`cronq_tick` calls
//! them suspects: one silent past the reservation timeout, one on this
//! host and boot, or a stale reservation), the statement leaves the claim
//! to a second transaction, which recovers first and then claims, exactly
//! as one transaction did before. Should the judge find a dead instance
//! the statement did not suspect, the second transaction recovers and
//! claims too, after a run with nothing claimed has already been ended.
//!
//! With many nodes every one of them ticks each minute, but only the node
//! that records the minute's run (the unique `(cron_id, scheduled_for)`)
//! goes past the heartbeat and the extension.

use serde_json::Value;
use tokio_postgres::Row;

use super::PgStore;
use super::claim::{claim_on, claim_quotas_on};
use super::crons::{finish_run_on, parse_status, settle_orphan_runs_on};
use super::instances::remove_instances_on;
use super::listings::COMPACT_LOCK;
use super::maintenance::recover_on;
use super::row::{JOB_COLUMNS, job_from_row};
use super::time::Frame;
use crate::store::StoreError;
use crate::store::history::Pruned;
use crate::store::instance::InstanceRow;
use crate::store::job::{Claimed, Lease};
use crate::store::run::{KEPT_RUNS, RunRow, RunStatus};
use crate::store::tick::{Tick, Ticked, within};

impl PgStore {
    pub async fn tick(&self, tick: Tick) -> Result<Ticked, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&tick_statement())
            .await
            .map_err(|e| self.err(&e))?;
        let now = tick.now;
        let row = &tick.instance;
        let lease_ids: Vec<&str> = tick.leases.iter().map(|l| l.job_id.as_str()).collect();
        let lease_attempts: Vec<i32> = tick
            .leases
            .iter()
            .map(|l| l.attempt.min(i32::MAX as u32) as i32)
            .collect();
        let lease_holders: Vec<&str> = tick.leases.iter().map(|l| l.instance.as_str()).collect();
        let run = tick.run.as_ref();
        let run_finished = run
            .filter(|r| r.status != RunStatus::Running)
            .map(|r| f.db(r.now));
        let limit = tick.limit.min(i32::MAX as usize) as i32;
        let (quota_types, quota_counts): (Vec<&str>, Vec<i32>) = tick
            .quotas
            .iter()
            .map(|(t, n)| (t.as_str(), (*n).min(i32::MAX as usize) as i32))
            .unzip();
        let prune = tick.prune.as_ref();
        let history_max = prune
            .and_then(|p| p.history_max)
            .map(|max| i64::try_from(max).unwrap_or(i64::MAX));
        let prune_batch = prune.map_or(0, |p| p.batch.max(1) as i64);
        let before = self.inner.clock.now_ms();
        let rows = client
            .query(
                &stmt,
                &[
                    &row.id,
                    &row.host,
                    &row.boot_id,
                    &row.pid,
                    &row.start_ticks,
                    &row.version,
                    &f.db(row.started),
                    &f.db(now),
                    &self.clock_offset_ms(),
                    &row.workers_max,
                    &row.workers_busy,
                    &lease_ids,
                    &lease_attempts,
                    &lease_holders,
                    &run.map(|r| r.cron_id.as_str()),
                    &run.map(|r| super::time::time_of(r.scheduled_for)),
                    &run.map(|r| r.trigger.as_str()),
                    &run.map(|r| r.status.as_str()),
                    &run.map(|r| f.db(r.now)),
                    &run_finished,
                    &run.and_then(|r| r.error.as_deref()),
                    &run.map(|r| r.instance.as_str()),
                    &KEPT_RUNS,
                    &f.db(tick.stale_before),
                    &tick.types,
                    &limit,
                    &COMPACT_LOCK,
                    &quota_types,
                    &quota_counts,
                    &prune.and_then(|p| p.history_before).map(|ms| f.db(ms)),
                    &history_max,
                    &prune.and_then(|p| p.dead_before).map(|ms| f.db(ms)),
                    &prune_batch,
                ],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let after = self.inner.clock.now_ms();
        let (meta, claimed) = self.read_rows(rows, &tick, f)?;
        let field = |key: &str| meta.get(key).unwrap_or(&Value::Null);
        if let Some(server) = field("server_ms").as_i64() {
            self.inner.offset.record(before, server, after, false);
        }
        let mut out = Ticked {
            lost: lost_leases(field("lost"), &tick.leases),
            fired: field("fired").as_bool().unwrap_or(false),
            orphan_runs: field("orphans").as_u64().unwrap_or(0) as usize,
            claimed,
            pruned: pruned(field("pruned_history"), field("pruned_dead"), prune_batch),
            ..Ticked::default()
        };
        if !out.fired {
            return Ok(out);
        }
        out.run = match (run, field("run")) {
            (Some(new), Value::Object(_)) => Some(run_row(new, field("run"), f)),
            _ => None,
        };
        let own_id = tick.instance.id.clone();
        let dead: Vec<String> = instance_rows(field("instances"), f)
            .iter()
            .filter(|row| row.id != own_id && (tick.judge)(row))
            .map(|row| row.id.clone())
            .collect();
        if field("suspects").as_bool().unwrap_or(true) || !dead.is_empty() {
            let Tick {
                instance,
                stale_before,
                types,
                limit,
                quotas,
                ..
            } = tick;
            let claim = Claim {
                instance: &instance.id,
                types: &types,
                quotas: &quotas,
                limit,
                now,
            };
            self.recover_and_claim(claim, stale_before, dead, &mut out, f)
                .await?;
        }
        Ok(out)
    }

    /// The claimed jobs and the meta row of `cronq_tick`'s answer.
    fn read_rows(
        &self,
        rows: Vec<Row>,
        tick: &Tick,
        f: Frame,
    ) -> Result<(Value, Vec<Claimed>), StoreError> {
        let mut meta = Value::Null;
        let mut claimed = Vec::new();
        for row in rows {
            let m: Option<Value> = row.try_get(18).map_err(|e| self.err(&e))?;
            if let Some(m) = m {
                meta = m;
                continue;
            }
            let job = job_from_row(&row, self.defaults(), tick.now, f).map_err(|e| self.err(&e))?;
            let lease = Lease {
                job_id: job.id.clone(),
                attempt: job.attempts,
                instance: tick.instance.id.clone(),
            };
            claimed.push(Claimed { job, lease });
        }
        if !meta.is_object() {
            return Err(StoreError::Database(
                "cronq_tick answered without its summary row".into(),
            ));
        }
        claimed.sort_by(|a, b| {
            b.job
                .priority
                .cmp(&a.job.priority)
                .then(a.job.run_at.cmp(&b.job.run_at))
        });
        Ok((meta, claimed))
    }

    /// The second transaction of a tick with suspects: recover the dead
    /// instances' and stale reservations, remove the dead, settle their
    /// orphan runs, claim what is left of the limit, and end the run when
    /// nothing was claimed.
    async fn recover_and_claim(
        &self,
        claim: Claim<'_>,
        stale_before: crate::clock::Millis,
        dead: Vec<String>,
        out: &mut Ticked,
        f: Frame,
    ) -> Result<(), StoreError> {
        let e = |e: tokio_postgres::Error| self.err(&e);
        let now = claim.now;
        let at = f.db(now);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(e)?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(e)?;
        out.recovered = recover_on(&tx, self.defaults(), stale_before, &dead, now, f)
            .await
            .map_err(e)?;
        remove_instances_on(&tx, &dead).await.map_err(e)?;
        out.removed_instances = dead.len();
        out.orphan_runs += settle_orphan_runs_on(&tx, at).await.map_err(e)?;
        // Types with a limit first, within their quotas, as on SQLite.
        let quotas = within(claim.quotas, claim.limit.saturating_sub(out.claimed.len()));
        let limited = claim_quotas_on(&tx, self.defaults(), claim.instance, &quotas, now, f)
            .await
            .map_err(e)?;
        out.claimed.extend(limited);
        let room = claim.limit.saturating_sub(out.claimed.len());
        let more = claim_on(
            &tx,
            self.defaults(),
            claim.instance,
            claim.types,
            room,
            now,
            f,
        )
        .await
        .map_err(e)?;
        out.claimed.extend(more);
        if out.claimed.is_empty()
            && let Some(run) = &out.run
        {
            out.run = finish_run_on(&tx, run.id, RunStatus::Ok, None, at, f)
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        Ok(())
    }
}

/// What the second transaction claims, and for whom.
struct Claim<'a> {
    instance: &'a str,
    types: &'a [String],
    quotas: &'a [(String, usize)],
    limit: usize,
    now: crate::clock::Millis,
}

/// `SELECT` of `cronq_tick`: the claimed jobs' [`JOB_COLUMNS`], then the
/// meta column (index 18).
fn tick_statement() -> String {
    let columns: Vec<String> = JOB_COLUMNS
        .split(',')
        .map(|c| format!("(t.job).{}", c.trim()))
        .collect();
    let params: Vec<String> = (1..=33).map(|n| format!("${n}")).collect();
    format!(
        "SELECT {}, t.meta FROM cronq_tick({}) AS t",
        columns.join(", "),
        params.join(", ")
    )
}

/// What `cronq_tick`'s round of pruning deleted; another round is due when
/// a kind reached the batch.
fn pruned(history: &Value, dead: &Value, batch: i64) -> Pruned {
    let history = history.as_u64().unwrap_or(0);
    let dead = dead.as_u64().unwrap_or(0);
    let full = |n: u64| batch > 0 && n >= batch as u64;
    Pruned {
        history,
        dead,
        more: full(history) || full(dead),
    }
}

/// The leases at the 1-based positions `lost` names.
fn lost_leases(lost: &Value, leases: &[Lease]) -> Vec<Lease> {
    lost.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_u64())
        .filter_map(|n| leases.get((n as usize).checked_sub(1)?).cloned())
        .collect()
}

fn instance_rows(rows: &Value, f: Frame) -> Vec<InstanceRow> {
    let at = |row: &Value, key: &str| {
        f.ms(super::time::time_of(
            row.get(key).and_then(Value::as_i64).unwrap_or(0),
        ))
    };
    let text = |row: &Value, key: &str| {
        row.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let int = |row: &Value, key: &str| row.get(key).and_then(Value::as_i64).unwrap_or(0);
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| InstanceRow {
            id: text(row, "id"),
            host: text(row, "host"),
            boot_id: text(row, "boot_id"),
            pid: int(row, "pid"),
            start_ticks: int(row, "start_ticks"),
            version: text(row, "version"),
            started: at(row, "started_ms"),
            heartbeat_at: at(row, "heartbeat_ms"),
            workers_max: int(row, "workers_max"),
            workers_busy: int(row, "workers_busy"),
            clock_offset_ms: int(row, "clock_offset_ms"),
        })
        .collect()
}

/// The recorded run, as `cronq_tick` left it.
fn run_row(new: &crate::store::run::NewRun, stored: &Value, f: Frame) -> RunRow {
    let finished = stored
        .get("finished_ms")
        .and_then(Value::as_i64)
        .map(|ms| f.ms(super::time::time_of(ms)));
    RunRow {
        id: stored.get("id").and_then(Value::as_i64).unwrap_or(0),
        cron_id: new.cron_id.clone(),
        scheduled_for: new.scheduled_for,
        trigger: new.trigger.as_str().to_string(),
        status: parse_status(stored.get("status").and_then(Value::as_str).unwrap_or("")),
        started: Some(new.now),
        finished,
        duration_ms: stored.get("duration_ms").and_then(Value::as_i64),
        error: stored
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
        job_id: None,
        job_status: None,
    }
}
