//! Per-type limits of this daemon: `JOB_TYPE_CONCURRENCY` (at most N jobs
//! of a type held at once: claimed ahead of a worker, or running) and
//! `JOB_TYPE_RATE` (at most N jobs of a type started in any rolling window
//! of a second, a minute or an hour).
//!
//! Both are enforced where jobs are claimed, not where they start: a type
//! with a limit is claimed apart, each up to its quota of the moment
//! (`Backend::claim_quotas`), so a job of a limited type never sits in the
//! claimed-ahead buffer holding a worker it may not use, the rest of the
//! pool stays free for other types, and types without a limit are claimed
//! exactly as before (with no limit configured, nothing here runs at all).
//!
//! A quota is reserved before the claim and settled after it, under one
//! lock, so the dispatcher and a `system_queue` drain claiming at once can
//! never take more than the limit between them.
//!
//! Why a rolling window and not a token bucket for the rate: a bucket of N
//! tokens refilled at N a second lets 2N through in one second (a full
//! bucket, then its refill), and the limits this serves (an SMTP provider's
//! "14 messages a second") count starts in any second. The window keeps
//! the last N start instants of the type; a start is allowed when the
//! oldest of them is a whole period old.
//!
//! The limits are per daemon: with several daemons on one PostgreSQL
//! database each keeps its own, so a cluster of K runs up to K times each.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, TypeRate};
use crate::store::job::Claimed;

/// The per-type limits and what each type holds now.
#[derive(Debug, Default)]
pub struct Limits {
    concurrency: HashMap<String, usize>,
    rate: HashMap<String, TypeRate>,
    state: Mutex<HashMap<String, TypeState>>,
}

#[derive(Debug, Default)]
struct TypeState {
    /// Jobs claimed and not yet finished here.
    held: usize,
    /// Start instants within the rate's window, oldest first.
    starts: VecDeque<Instant>,
    /// Quota reserved by a claim under way, not yet settled.
    reserved: usize,
    /// The last claim took its whole quota: more may be ready.
    saturated: bool,
}

/// What a claim reserved: each type's quota.
#[derive(Debug, Default)]
pub struct Reserved(pub Vec<(String, usize)>);

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            concurrency: config.type_concurrency.clone().into_iter().collect(),
            rate: config.type_rate.clone().into_iter().collect(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// No type has a limit.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_empty() && self.rate.is_empty()
    }

    pub fn is_limited(&self, job_type: &str) -> bool {
        self.concurrency.contains_key(job_type) || self.rate.contains_key(job_type)
    }

    /// `types` without a limit: claimed as before.
    pub fn unlimited(&self, types: &[String]) -> Vec<String> {
        types
            .iter()
            .filter(|t| !self.is_limited(t))
            .cloned()
            .collect()
    }

    /// Reserves each limited type of `types` its quota now, `room` jobs at
    /// most in all. Settle it with [`Limits::settle`] once claimed.
    pub fn reserve(&self, types: &[String], mut room: usize, now: Instant) -> Reserved {
        let mut state = super::lock(&self.state);
        let mut out = Vec::new();
        for job_type in types.iter().filter(|t| self.is_limited(t)) {
            if room == 0 {
                break;
            }
            let s = state.entry(job_type.clone()).or_default();
            let mut quota = room;
            if let Some(max) = self.concurrency.get(job_type) {
                quota = quota.min(max.saturating_sub(s.held + s.reserved));
            }
            if let Some(rate) = self.rate.get(job_type) {
                expire(&mut s.starts, rate.per, now);
                let used = s.starts.len() + s.reserved;
                quota = quota.min((rate.starts as usize).saturating_sub(used));
            }
            if quota > 0 {
                s.reserved += quota;
                room -= quota;
                out.push((job_type.clone(), quota));
            }
        }
        Reserved(out)
    }

    /// Settles a reservation with what its claim got (nothing, when the
    /// claim failed): the jobs are held and their starts counted at `now`,
    /// the rest of the quota is given back.
    pub fn settle(&self, reserved: Reserved, claimed: &[Claimed], now: Instant) {
        if reserved.0.is_empty() {
            return;
        }
        let mut state = super::lock(&self.state);
        for (job_type, quota) in reserved.0 {
            let got = claimed
                .iter()
                .filter(|c| c.job.job_type == job_type)
                .count();
            let s = state.entry(job_type.clone()).or_default();
            s.reserved = s.reserved.saturating_sub(quota);
            s.saturated = got >= quota;
            if self.concurrency.contains_key(&job_type) {
                s.held += got;
            }
            if self.rate.contains_key(&job_type) {
                s.starts.extend(std::iter::repeat_n(now, got));
            }
        }
    }

    /// A job of `job_type` claimed by this daemon finished (or was given
    /// back). True when the type has a concurrency limit: its quota grew.
    pub fn ended(&self, job_type: &str) -> bool {
        if !self.concurrency.contains_key(job_type) {
            return false;
        }
        let mut state = super::lock(&self.state);
        if let Some(s) = state.get_mut(job_type) {
            s.held = s.held.saturating_sub(1);
        }
        true
    }

    /// When a rate-limited type whose last claim took its whole quota gets
    /// room in its window again: the dispatcher's wake-up for it.
    pub fn next_room(&self, now: Instant) -> Option<Instant> {
        let mut state = super::lock(&self.state);
        let mut next: Option<Instant> = None;
        for (job_type, rate) in &self.rate {
            let Some(s) = state.get_mut(job_type) else {
                continue;
            };
            expire(&mut s.starts, rate.per, now);
            if !s.saturated || s.starts.len() < rate.starts as usize {
                continue;
            }
            if let Some(oldest) = s.starts.front() {
                let at = *oldest + rate.per;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Why a ready job of `job_type` is held back by a limit now, if it is.
    pub fn holding_back(&self, job_type: &str, now: Instant) -> Option<String> {
        // No state for a type without a limit: `explain` of any job must
        // not grow this map.
        if !self.is_limited(job_type) {
            return None;
        }
        let mut state = super::lock(&self.state);
        let s = state.entry(job_type.to_string()).or_default();
        if let Some(max) = self.concurrency.get(job_type)
            && s.held >= *max
        {
            return Some(format!(
                "at most {max} {job_type} job(s) run at once on this daemon \
                 (JOB_TYPE_CONCURRENCY) and {} are claimed or running; it waits for one to finish",
                s.held
            ));
        }
        if let Some(rate) = self.rate.get(job_type) {
            expire(&mut s.starts, rate.per, now);
            if s.starts.len() >= rate.starts as usize {
                let wait = s.starts.front().map_or(Duration::ZERO, |t| {
                    (*t + rate.per).saturating_duration_since(now)
                });
                return Some(format!(
                    "at most {} {job_type} job(s) start per {} on this daemon (JOB_TYPE_RATE) \
                     and that many have started in the last one; the next may start in {} ms",
                    rate.starts,
                    rate.unit(),
                    wait.as_millis()
                ));
            }
        }
        None
    }

    /// The limits in force, for `status`: `{"email": {"concurrency": 2,
    /// "rate": "14/s", "held": 1}}`.
    pub fn describe(&self) -> serde_json::Value {
        let state = super::lock(&self.state);
        let mut types: Vec<&String> = self.concurrency.keys().chain(self.rate.keys()).collect();
        types.sort();
        types.dedup();
        let mut out = serde_json::Map::new();
        for t in types {
            out.insert(
                t.clone(),
                serde_json::json!({
                    "concurrency": self.concurrency.get(t),
                    "rate": self.rate.get(t).map(|r| format!("{}/{}", r.starts, r.unit_letter())),
                    "held": state.get(t).map_or(0, |s| s.held),
                }),
            );
        }
        serde_json::Value::Object(out)
    }
}

/// Drops starts that left the window.
fn expire(starts: &mut VecDeque<Instant>, per: Duration, now: Instant) {
    while starts
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= per)
    {
        starts.pop_front();
    }
}

/// Parses `JOB_TYPE_CONCURRENCY`'s value for one type: a whole number,
/// 1 to 10,000.
pub fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number of jobs from 1 to 10000")),
    }
}

/// Parses `JOB_TYPE_RATE`'s value for one type: `N/s`, `N/m` or `N/h`
/// (also `/second`, `/minute`, `/hour`), N from 1 to 100,000.
pub fn parse_rate(text: &str) -> Result<TypeRate, String> {
    let bad = || {
        format!(
            "{text:?} is not a rate such as 14/s, 600/m or 1000/h (starts per second, minute or hour, 1 to 100000)"
        )
    };
    let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let starts: u32 = n.trim().parse().map_err(|_| bad())?;
    if !(1..=100_000).contains(&starts) {
        return Err(bad());
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(TypeRate { starts, per })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::job::{Job, JobStatus, Lease};

    fn limits(concurrency: &[(&str, usize)], rate: &[(&str, &str)]) -> Limits {
        Limits {
            concurrency: concurrency
                .iter()
                .map(|(t, n)| (t.to_string(), *n))
                .collect(),
            rate: rate
                .iter()
                .map(|(t, r)| (t.to_string(), parse_rate(r).unwrap()))
                .collect(),
            state: Mutex::new(HashMap::new()),
        }
    }

    fn claimed(job_type: &str, n: usize) -> Vec<Claimed> {
        (0..n)
            .map(|i| Claimed {
                job: Job {
                    id: format!("{job_type}{i}"),
                    name: String::new(),
                    description: String::new(),
                    job_type: job_type.to_string(),
                    payload: serde_json::Value::Null,
                    status: JobStatus::Running,
                    attempts: 1,
                    max_attempts: 1,
                    priority: 0,
                    timeout_s: 30,
                    run_at: 0,
                    reserved_at: None,
                    reserved_by: None,
                    last_error: None,
                    unique_key: None,
                    cron_id: None,
                    created: 0,
                    updated: 0,
                },
                lease: Lease {
                    job_id: format!("{job_type}{i}"),
                    attempt: 1,
                    instance: "me".into(),
                },
            })
            .collect()
    }

    fn types(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn concurrency_counts_claimed_jobs_until_they_end() {
        let l = limits(&[("email", 2)], &[]);
        let now = Instant::now();
        let all = types(&["email", "noop"]);
        assert_eq!(l.unlimited(&all), types(&["noop"]));
        let r = l.reserve(&all, 10, now);
        assert_eq!(r.0, vec![("email".to_string(), 2)]);
        // A second claimer at the same time gets nothing.
        assert!(l.reserve(&all, 10, now).0.is_empty());
        l.settle(r, &claimed("email", 1), now);
        assert_eq!(l.reserve(&all, 10, now).0, vec![("email".to_string(), 1)]);
        l.settle(
            Reserved(vec![("email".into(), 1)]),
            &claimed("email", 1),
            now,
        );
        assert!(l.reserve(&all, 10, now).0.is_empty());
        assert!(l.holding_back("email", now).is_some());
        assert!(l.ended("email"));
        assert!(!l.ended("noop"));
        assert_eq!(l.reserve(&all, 10, now).0, vec![("email".to_string(), 1)]);
    }

    #[test]
    fn the_rate_is_a_rolling_window() {
        let l = limits(&[], &[("email", "3/s")]);
        let t0 = Instant::now();
        let all = types(&["email"]);
        let r = l.reserve(&all, 100, t0);
        assert_eq!(r.0, vec![("email".to_string(), 3)]);
        l.settle(r, &claimed("email", 3), t0);
        assert!(
            l.reserve(&all, 100, t0 + Duration::from_millis(999))
                .0
                .is_empty()
        );
        assert_eq!(
            l.next_room(t0 + Duration::from_millis(500)),
            Some(t0 + Duration::from_secs(1))
        );
        let r = l.reserve(&all, 100, t0 + Duration::from_secs(1));
        assert_eq!(r.0, vec![("email".to_string(), 3)]);
        // Only one was ready: the type is no longer saturated, no wake-up.
        l.settle(r, &claimed("email", 1), t0 + Duration::from_secs(1));
        assert_eq!(l.next_room(t0 + Duration::from_secs(1)), None);
        assert_eq!(
            l.reserve(&all, 100, t0 + Duration::from_secs(1)).0,
            vec![("email".to_string(), 2)]
        );
    }

    #[test]
    fn room_bounds_the_quotas_together() {
        let l = limits(&[("a", 5), ("b", 5)], &[]);
        let r = l.reserve(&types(&["a", "b"]), 7, Instant::now());
        assert_eq!(r.0, vec![("a".to_string(), 5), ("b".to_string(), 2)]);
    }

    #[test]
    fn values_parse_or_say_what_is_wrong() {
        assert_eq!(parse_concurrency("2"), Ok(2));
        assert!(parse_concurrency("0").is_err());
        let r = parse_rate("14/s").unwrap();
        assert_eq!((r.starts, r.per), (14, Duration::from_secs(1)));
        assert_eq!(parse_rate("600/m").unwrap().per, Duration::from_secs(60));
        assert_eq!(
            parse_rate("10/hour").unwrap().per,
            Duration::from_secs(3600)
        );
        for bad in ["14", "0/s", "14/d", "x/s", "14/"] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains("14/s"), "{bad}: {e}");
        }
    }
}
