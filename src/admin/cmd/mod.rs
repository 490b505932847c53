//! One module per admin command, and the dispatch from `cmd` to them.

mod bulk;
mod cancel;
mod cron;
mod crons;
mod enqueue;
mod explain;
mod import;
mod instances;
mod job;
mod jobs;
mod log_level;
mod metrics;
mod next;
mod pause;
mod ping;
mod purge;
mod reload;
mod retry;
mod stats;
mod status;
mod switch;
mod trigger;
pub mod wait;
pub mod watch;

use std::sync::Arc;

use super::protocol::request::{CancelArgs, IdArg, NoArgs};
use super::protocol::{AdminError, Answer, Code, Request};
use super::rate::RateLimiter;
use crate::cron::scheduler::Scheduler;
use crate::queue::Queue;

pub use metrics::render as render_metrics;

/// Sets the log level at runtime; returns the level now in force.
pub type LevelSetter = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Who is on the other end of a connection (SO_PEERCRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// What every command may use.
pub struct Ctx {
    pub queue: Queue,
    pub scheduler: Scheduler,
    pub log_level: Option<LevelSetter>,
    pub rate: Option<RateLimiter>,
    /// Set once the daemon has finished starting.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// The PocketBase follower's state, when CRONQ_POCKETBASE_URL is set.
    pub pocketbase: Option<Arc<crate::bridge::pocketbase::FollowStatus>>,
}

/// Commands that change state: logged with the peer's uid and pid.
const CHANGES_STATE: [&str; 12] = [
    "enqueue",
    "import",
    "retry",
    "cancel",
    "purge",
    "trigger",
    "enable",
    "disable",
    "reload",
    "log_level",
    "pause",
    "resume",
];

impl Ctx {
    /// Applies the per-peer enqueue rate limit to `jobs` new jobs.
    fn admit(&self, peer: Peer, jobs: usize) -> Result<(), AdminError> {
        match &self.rate {
            Some(rate) => rate.admit(peer.uid, jobs),
            None => Ok(()),
        }
    }
}

/// During a shutdown drain the socket still answers, so an operator can
/// watch what the daemon waits for; only commands that would start or
/// change work are refused. `log_level` still works: it helps to see why
/// a drain takes long.
fn refused_while_draining(ctx: &Ctx, cmd: &str) -> Result<(), AdminError> {
    if ctx.queue.shutdown_token().is_cancelled()
        && cmd != "log_level"
        && CHANGES_STATE.contains(&cmd)
    {
        return Err(AdminError::new(
            Code::Unavailable,
            format!(
                "shutting down: the daemon is waiting for its running jobs and takes no {cmd} \
                 now; read-only commands (status, jobs, job, crons, ...) still answer"
            ),
        ));
    }
    Ok(())
}

pub async fn dispatch(ctx: &Ctx, peer: Peer, req: &Request) -> Result<Answer, AdminError> {
    refused_while_draining(ctx, &req.cmd)?;
    if CHANGES_STATE.contains(&req.cmd.as_str()) {
        tracing::info!(cmd = %req.cmd, uid = peer.uid, pid = peer.pid, "admin command {} from uid {}", req.cmd, peer.uid);
    }
    let no_args = || req.args::<NoArgs>().map(|_| ());
    match req.cmd.as_str() {
        "ping" => {
            no_args()?;
            ping::run()
        }
        "status" => {
            no_args()?;
            status::run(ctx).await
        }
        "enqueue" => return enqueue::run(ctx, peer, req).await,
        "import" => return import::run(ctx, peer, req).await,
        "jobs" => jobs::run(ctx, req).await,
        "job" => job::run(ctx, req).await,
        "explain" => explain::run(ctx, req).await,
        "retry" => retry::run(ctx, req).await,
        "cancel" => cancel::run(ctx, req).await,
        "purge" => purge::run(ctx, req).await,
        "crons" => {
            no_args()?;
            crons::run(ctx).await
        }
        "cron" => cron::run(ctx, req).await,
        "trigger" => trigger::run(ctx, req).await,
        "enable" => switch::run(ctx, req, true).await,
        "disable" => switch::run(ctx, req, false).await,
        "next" => next::run(ctx, req),
        "stats" => {
            no_args()?;
            stats::run(ctx).await
        }
        "metrics" => {
            no_args()?;
            metrics::run(ctx).await
        }
        "instances" => {
            no_args()?;
            instances::run(ctx).await
        }
        "reload" => {
            no_args()?;
            reload::run(ctx).await
        }
        "log_level" => log_level::run(ctx, req),
        "pause" => pause::run(ctx, req, true).await,
        "resume" => pause::run(ctx, req, false).await,
        "wait" => wait::run(ctx, req).await,
        // The server serves a watch itself (the connection becomes a
        // stream); here only its arguments can be judged.
        "watch" => watch::parse(req).and(Err(AdminError::bad_request(
            "watch: only on a connection of its own",
        ))),
        other => Err(unknown_command(other)),
    }
    .map(Answer::from)
}

/// Checks a request's command and arguments as `dispatch` would, without
/// the store, the scheduler or the clock: the fuzz target's way in.
pub fn validate_only(req: &Request) -> Result<(), AdminError> {
    let no_args = || req.args::<NoArgs>().map(|_| ());
    match req.cmd.as_str() {
        "ping" | "status" | "crons" | "stats" | "metrics" | "reload" | "instances" => no_args(),
        "enqueue" => enqueue::parse(req).map(|_| ()),
        "import" => import::parse(req).map(|_| ()),
        "jobs" => jobs::parse(req).map(|_| ()),
        "retry" if bulk::is_bulk(req) => bulk::parse(req, bulk::Verb::Retry).map(|_| ()),
        "cancel" if bulk::is_bulk(req) => bulk::parse(req, bulk::Verb::Cancel).map(|_| ()),
        "job" | "explain" | "retry" | "trigger" | "enable" | "disable" => {
            req.args_with_id::<IdArg>().map(|_| ())
        }
        "cancel" => req.args_with_id::<CancelArgs>().map(|_| ()),
        "pause" | "resume" => pause::parse(req).map(|_| ()),
        "wait" => wait::parse(req).map(|_| ()),
        "watch" => watch::parse(req).map(|_| ()),
        "purge" => purge::parse(req).map(|_| ()),
        "cron" => cron::parse(req).map(|_| ()),
        "next" => next::parse(req).map(|_| ()),
        "log_level" => log_level::parse(req).map(|_| ()),
        other => Err(unknown_command(other)),
    }
}

fn unknown_command(cmd: &str) -> AdminError {
    AdminError::new(
        Code::UnknownCommand,
        format!("unknown command {cmd:?}; see `man cronq` for the list"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Result<(), Code> {
        let req = Request::parse(line.as_bytes()).map_err(|(_, e)| e.code)?;
        validate_only(&req).map_err(|e| e.code)
    }

    #[test]
    fn validate_only_checks_arguments_as_dispatch_would() {
        for good in [
            r#"{"cmd":"ping"}"#,
            r#"{"cmd":"enqueue","name":"x","payload":{"type":"anything"}}"#,
            r#"{"cmd":"jobs","limit":1000,"after":"1767225600000.abc"}"#,
            r#"{"cmd":"cancel","id":"k3j9x0c2m1q8z7a"}"#,
            r#"{"cmd":"purge","status":"dead","older_than":5}"#,
            r#"{"cmd":"cron","id":"system_queue","limit":3}"#,
            r#"{"cmd":"next","schedule":"@hourly","timezone":"Europe/Berlin"}"#,
            r#"{"cmd":"log_level","level":"trace"}"#,
            r#"{"cmd":"pause","type":"email"}"#,
            r#"{"cmd":"resume"}"#,
            r#"{"cmd":"retry","id":7,"filter":{"status":"dead"},"after":"1.abc"}"#,
            r#"{"cmd":"cancel","filter":{"type":"email"}}"#,
            r#"{"cmd":"purge","status":"dead","type":"email","since":"2026-01-01T00:00:00Z"}"#,
            r#"{"cmd":"jobs","status":"succeeded","name":"n","cron_id":"c","after":"12"}"#,
            r#"{"cmd":"cancel","id":"k3j9x0c2m1q8z7a","force":true}"#,
            r#"{"cmd":"wait","id":"k3j9x0c2m1q8z7a","timeout":5}"#,
            r#"{"cmd":"watch","types":["email"],"events":["dead"]}"#,
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for (bad, code) in [
            (r#"{"cmd":"ping","x":1}"#, Code::BadRequest),
            (r#"{"cmd":"enqueue","jobs":[]}"#, Code::BadRequest),
            (r#"{"cmd":"jobs","limit":0}"#, Code::BadRequest),
            (r#"{"cmd":"jobs","after":"nodot"}"#, Code::BadRequest),
            (r#"{"cmd":"retry"}"#, Code::BadRequest),
            (r#"{"cmd":"purge","status":"pending"}"#, Code::BadRequest),
            (
                r#"{"cmd":"next","schedule":"61 * * * *"}"#,
                Code::BadRequest,
            ),
            (r#"{"cmd":"log_level","level":"loud"}"#, Code::BadRequest),
            (r#"{"cmd":"pause","type":"*"}"#, Code::BadRequest),
            (r#"{"cmd":"resume","types":["a"]}"#, Code::BadRequest),
            (r#"{"cmd":"retry","filter":{}}"#, Code::BadRequest),
            (
                r#"{"cmd":"cancel","filter":{"status":"running"}}"#,
                Code::BadRequest,
            ),
            (
                r#"{"cmd":"purge","status":"dead","after":"x"}"#,
                Code::BadRequest,
            ),
            (
                r#"{"cmd":"jobs","status":"succeeded","after":"1.x"}"#,
                Code::BadRequest,
            ),
            (
                r#"{"cmd":"cancel","id":"x","force":"yes"}"#,
                Code::BadRequest,
            ),
            (r#"{"cmd":"wait","id":"x","timeout":0}"#, Code::BadRequest),
            (r#"{"cmd":"watch","events":["boom"]}"#, Code::BadRequest),
            (r#"{"cmd":"frobnicate"}"#, Code::UnknownCommand),
        ] {
            assert_eq!(check(bad), Err(code), "{bad}");
        }
    }
}
