//! The life of a command's processes, from spawn to reaping, and the one way
//! they are ended, [`JobProcesses::end`]: by the job's timeout, at shutdown,
//! after the program exits leaving others behind, and by anything else that
//! must stop a running job.
//!
//! Where they live decides what "all of them" means. In a cgroup of their
//! own (see `cgroup`), it is every process the job started, however it
//! detached. Otherwise the child leads its own process group, and it is that
//! group: a process that calls setsid(2) leaves it and is out of reach. In
//! both, the child gets `PR_SET_PDEATHSIG` (SIGKILL), so the program the job
//! started dies with the daemon even when the daemon is killed outright.
//!
//! The choice a reader may question: ending happens in `Drop`, and the
//! escalation (SIGTERM to the group, then SIGKILL, or `cgroup.kill`, after
//! [`KILL_GRACE`]) runs on a plain thread. The queue abandons a job that
//! overruns its timeout by dropping the handler's future, so no code after
//! an `.await` in the handler runs; only destructors do. A thread, unlike a
//! task, also keeps going while the runtime shuts down, and the daemon waits
//! for these threads ([`wait_until_ended`]) before it exits. The same path
//! serves a normal exit: processes the command left behind (`sleep 100 &`)
//! are ended too, as systemd ends a service's control group, so a job's
//! processes never outlive it and never hold its output pipes open.

use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::cgroup::{Deaths, JobCgroup};
use super::tail::Output;

/// Between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often the ending thread looks whether the processes are gone.
const POLL: Duration = Duration::from_millis(50);

/// Sets up how the child starts: leading its own process group, with
/// `PR_SET_PDEATHSIG`, and inside `cgroup` (when given) before it execs.
pub fn prepare(command: &mut Command, cgroup: Option<&JobCgroup>) {
    command.process_group(0);
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let procs = cgroup.map(JobCgroup::procs_fd);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe calls (write, prctl, getppid) on plain values
    // copied into it; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs {
                // "0" moves the writer itself into the cgroup.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // The signal comes when the *thread* that forked ends. Jobs are
            // spawned from the runtime's worker threads, which live as long
            // as the daemon.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The daemon died between fork and prctl: no signal will come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A running command's processes; ends them when dropped unfinished.
pub struct JobProcesses {
    /// `None` once the leader has been reaped.
    child: Option<Child>,
    /// `None` once ended, normally or not.
    members: Option<Members>,
    /// `argv[0]`, for log lines.
    program: String,
    output: Arc<Output>,
}

/// Where a job's processes are: the leader's process group, and the job's
/// cgroup when it has one.
enum Members {
    Group(libc::pid_t),
    Cgroup {
        pgid: libc::pid_t,
        cgroup: JobCgroup,
    },
}

impl JobProcesses {
    /// Takes charge of `child`, spawned after [`prepare`] (so its pid is its
    /// group's id) into `cgroup`.
    pub fn new(
        child: Child,
        cgroup: Option<JobCgroup>,
        program: String,
        output: Arc<Output>,
    ) -> io::Result<JobProcesses> {
        let pgid = child
            .id()
            .ok_or_else(|| io::Error::other("the child was reaped before it was watched"))
            .and_then(|pid| libc::pid_t::try_from(pid).map_err(io::Error::other));
        let pgid = match pgid {
            Ok(pgid) => pgid,
            Err(e) => {
                if let Some(cgroup) = cgroup {
                    discard(cgroup);
                }
                return Err(e);
            }
        };
        let members = match cgroup {
            Some(cgroup) => Members::Cgroup { pgid, cgroup },
            None => Members::Group(pgid),
        };
        Ok(JobProcesses {
            child: Some(child),
            members: Some(members),
            program,
            output,
        })
    }

    /// The leader's pid, which is its process group's id.
    pub fn pgid(&self) -> Option<libc::pid_t> {
        self.members.as_ref().map(Members::pgid)
    }

    /// The job's cgroup, if it has one and is still running.
    pub fn cgroup(&self) -> Option<&JobCgroup> {
        match &self.members {
            Some(Members::Cgroup { cgroup, .. }) => Some(cgroup),
            _ => None,
        }
    }

    /// Waits for the leader to exit, reads what the kernel counted (out of
    /// memory, forks refused), then ends whatever the job left, so that the
    /// output pipes close.
    pub async fn wait(&mut self) -> io::Result<(ExitStatus, Deaths)> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| io::Error::other("the command was already reaped"))?;
        let status = child.wait().await?;
        self.child = None;
        let Some(members) = self.members.take() else {
            return Ok((status, Deaths::default()));
        };
        let deaths = match &members {
            Members::Cgroup { cgroup, .. } => cgroup.deaths(),
            Members::Group(_) => Deaths::default(),
        };
        if members.alive() {
            tracing::debug!(
                program = %self.program,
                pgid = members.pgid(),
                "the command left processes behind; ending them"
            );
            end(members, None);
        } else if let Members::Cgroup { cgroup, .. } = members {
            finish(cgroup);
        }
        Ok((status, deaths))
    }

    /// Ends every process of the job: SIGTERM to its process group, then,
    /// once the group is gone or after [`KILL_GRACE`], SIGKILL to whatever
    /// is left (in a cgroup, `cgroup.kill`, which reaches the processes
    /// that left the group too); then the cgroup is removed. Returns at
    /// once; a thread sees it through.
    pub fn end(&mut self) {
        if let Some(members) = self.members.take() {
            end(members, self.child.take());
        }
    }
}

impl Drop for JobProcesses {
    fn drop(&mut self) {
        let Some(members) = &self.members else { return };
        tracing::warn!(
            program = %self.program,
            pgid = members.pgid(),
            stdout_tail = %self.output.stdout().text(),
            stderr_tail = %self.output.stderr().text(),
            "command abandoned before it finished (job timeout or shutdown); \
             ending its processes"
        );
        self.end();
    }
}

impl Members {
    fn pgid(&self) -> libc::pid_t {
        match self {
            Members::Group(pgid) | Members::Cgroup { pgid, .. } => *pgid,
        }
    }

    /// Whether any process of the job is left.
    fn alive(&self) -> bool {
        match self {
            Members::Group(pgid) => group_exists(*pgid),
            Members::Cgroup { cgroup, .. } => cgroup.populated(),
        }
    }

    fn kill(&self) {
        match self {
            Members::Group(pgid) => signal_group(*pgid, libc::SIGKILL),
            Members::Cgroup { pgid, cgroup } => {
                if let Err(e) = cgroup.kill() {
                    tracing::warn!(
                        cgroup = %cgroup.dir().display(),
                        "cgroup.kill failed ({e}); sending SIGKILL to the process group"
                    );
                    signal_group(*pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// The ending threads still running, so that shutdown can wait for them.
static ENDING: Mutex<usize> = Mutex::new(0);
static ENDED: Condvar = Condvar::new();

/// Counts one ending thread while it lives (a panic included).
struct Ending;

impl Ending {
    fn start() -> Ending {
        *ENDING.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Ending
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        *ENDING.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        ENDED.notify_all();
    }
}

/// Blocks until every job's processes that are being ended are gone, or
/// `limit` has passed; returns whether all are. The daemon calls it on its
/// way out, so an exit does not cut a grace period short.
pub fn wait_until_ended(limit: Duration) -> bool {
    let guard = ENDING.lock().unwrap_or_else(PoisonError::into_inner);
    let (guard, _) = ENDED
        .wait_timeout_while(guard, limit, |n| *n > 0)
        .unwrap_or_else(PoisonError::into_inner);
    *guard == 0
}

/// See [`JobProcesses::end`]; `leader` is reaped on the way.
fn end(members: Members, mut leader: Option<Child>) {
    let pgid = members.pgid();
    let cgroup_kill = match &members {
        Members::Cgroup { cgroup, .. } => Some(cgroup.dir().join("cgroup.kill")),
        Members::Group(_) => None,
    };
    signal_group(pgid, libc::SIGTERM);
    let ending = Ending::start();
    let thread = thread::Builder::new()
        .name(format!("cronq-end-{}", members.pgid()))
        .spawn(move || {
            let _ending = ending;
            let deadline = Instant::now() + KILL_GRACE;
            loop {
                reap(&mut leader);
                if leader.is_none() && !group_exists(pgid) {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        pgid,
                        "process group outlived SIGTERM by {KILL_GRACE:?}; sending SIGKILL"
                    );
                    break;
                }
                thread::sleep(POLL);
            }
            if members.alive() {
                if let Members::Cgroup { cgroup, .. } = &members
                    && !group_exists(pgid)
                {
                    tracing::debug!(
                        cgroup = %cgroup.dir().display(),
                        "processes that left the job's process group remain; cgroup.kill"
                    );
                }
                members.kill();
            }
            // SIGKILL cannot be refused; give the kernel a moment to deliver
            // it so the leader is reaped here. Should it take longer, the
            // dropped `Child` goes to tokio's orphan queue, which reaps it.
            for _ in 0..40 {
                reap(&mut leader);
                if leader.is_none() && !members.alive() {
                    break;
                }
                thread::sleep(POLL);
            }
            if let Members::Cgroup { cgroup, .. } = members {
                finish(cgroup);
            }
        });
    if let Err(e) = thread {
        // Without a thread there is no grace period to wait out.
        tracing::warn!(
            pgid,
            "cannot start a thread to end a job's processes ({e}); sending SIGKILL now"
        );
        signal_group(pgid, libc::SIGKILL);
        if let Some(path) = cgroup_kill {
            let _ = std::fs::write(path, "1");
        }
    }
}

/// Kills whatever is in a job's cgroup and removes it: for a program that
/// never started.
pub fn discard(cgroup: JobCgroup) {
    let _ = cgroup.kill();
    finish(cgroup);
}

/// Removes a job's cgroup once it is empty (cgroup.kill may take a moment).
fn finish(cgroup: JobCgroup) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while cgroup.populated() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let dir = cgroup.dir().to_path_buf();
    if let Err(e) = cgroup.remove() {
        tracing::warn!(cgroup = %dir.display(), "cannot remove a job's cgroup: {e}");
    }
}

fn reap(leader: &mut Option<Child>) {
    if let Some(child) = leader {
        // An error means it was reaped elsewhere; either way it is gone.
        if !matches!(child.try_wait(), Ok(None)) {
            *leader = None;
        }
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: killpg takes plain integers and touches no memory of ours.
    // ESRCH (the group is already gone) is the expected, harmless failure.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Whether any process, zombies included, is still in the group. While one
/// is, the kernel keeps the group's id, so it cannot be handed to another
/// group before this says "gone".
pub fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: as above; signal 0 only checks for existence and permission.
    let result = unsafe { libc::killpg(pgid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
