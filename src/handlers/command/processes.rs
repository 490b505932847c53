//! The life of a command's processes, from spawn to reaping: the child leads
//! its own process group, and every way out of a run ends that whole group.
//!
//! The choice a reader may question: killing happens in `Drop`, and the
//! escalation (SIGTERM, then SIGKILL after [`KILL_GRACE`]) runs on a plain
//! thread. The queue abandons a job that overruns its timeout by dropping
//! the handler's future, so no code after an `.await` in the handler runs;
//! only destructors do. A thread, unlike a task, also keeps going while the
//! runtime shuts down. The same path serves a normal exit: processes the
//! command left behind (`sleep 100 &`) are ended too, as systemd ends a
//! service's control group, so a job's processes never outlive it and never
//! hold its output pipes open.

use std::io;
use std::process::ExitStatus;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::tail::Output;

/// Between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often the killer thread looks whether the group is gone.
const POLL: Duration = Duration::from_millis(50);

/// A running command's process group; ends it when dropped unfinished.
pub struct ProcessGroup {
    pgid: libc::pid_t,
    /// `None` once the leader has been reaped.
    child: Option<Child>,
    /// `argv[0]`, for log lines.
    program: String,
    output: Arc<Output>,
    /// Whether the group was already ended, normally or not.
    done: bool,
}

impl ProcessGroup {
    /// Takes charge of `child`, which must have been spawned with
    /// `process_group(0)`, so that its pid is its group's id.
    pub fn new(child: Child, program: String, output: Arc<Output>) -> io::Result<ProcessGroup> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child was reaped before it was watched"))?;
        let pgid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        Ok(ProcessGroup {
            pgid,
            child: Some(child),
            program,
            output,
            done: false,
        })
    }

    pub fn pgid(&self) -> libc::pid_t {
        self.pgid
    }

    /// Waits for the leader to exit, then ends whatever it left in its
    /// group, so that the output pipes close.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| io::Error::other("the command was already reaped"))?;
        let status = child.wait().await?;
        self.child = None;
        self.done = true;
        if group_exists(self.pgid) {
            tracing::debug!(
                program = %self.program,
                pgid = self.pgid,
                "the command left processes behind; terminating them"
            );
            terminate(self.pgid, None);
        }
        Ok(status)
    }

    /// Ends the group now (SIGTERM, SIGKILL after the grace period).
    pub fn terminate(&mut self) {
        if !self.done {
            self.done = true;
            terminate(self.pgid, self.child.take());
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        tracing::warn!(
            program = %self.program,
            pgid = self.pgid,
            stdout_tail = %self.output.stdout().text(),
            stderr_tail = %self.output.stderr().text(),
            "command abandoned before it finished (job timeout or shutdown); \
             terminating its process group"
        );
        self.terminate();
    }
}

/// Sends SIGTERM to the group now and SIGKILL after [`KILL_GRACE`] if any
/// member is left, reaping the leader (when given) on the way.
fn terminate(pgid: libc::pid_t, mut leader: Option<Child>) {
    signal_group(pgid, libc::SIGTERM);
    let killer = thread::Builder::new()
        .name(format!("cronq-kill-{pgid}"))
        .spawn(move || {
            let deadline = Instant::now() + KILL_GRACE;
            loop {
                reap(&mut leader);
                if leader.is_none() && !group_exists(pgid) {
                    return;
                }
                if Instant::now() >= deadline {
                    break;
                }
                thread::sleep(POLL);
            }
            tracing::warn!(
                pgid,
                "process group outlived SIGTERM by {KILL_GRACE:?}; sending SIGKILL"
            );
            signal_group(pgid, libc::SIGKILL);
            // SIGKILL cannot be refused; give the kernel a moment to deliver
            // it so the leader is reaped here. Should it take longer, the
            // dropped `Child` goes to tokio's orphan queue, which reaps it.
            for _ in 0..20 {
                reap(&mut leader);
                if leader.is_none() {
                    break;
                }
                thread::sleep(POLL);
            }
        });
    if let Err(e) = killer {
        // Without a thread there is no grace period to wait out.
        tracing::warn!(
            pgid,
            "cannot start a thread to end a process group ({e}); sending SIGKILL now"
        );
        signal_group(pgid, libc::SIGKILL);
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
