//! Which of the two ways command jobs are held is in force in this process,
//! decided once at start-up: each job in a cgroup of its own (under systemd
//! with `Delegate=yes`), or each job in a process group.
//!
//! The operator's caps (JOB_COMMAND_MEMORY_MAX, JOB_COMMAND_TASKS_MAX) need
//! the cgroup and its controllers. Where they cannot be enforced the
//! command handler is switched off, saying why, rather than run jobs
//! without the caps the operator asked for; a job that asks for a cap of
//! its own there is refused the same way.

use std::sync::{Arc, OnceLock};

use super::cgroup::Cgroups;

/// How command jobs are held in this process.
#[derive(Debug, Clone)]
pub enum Containment {
    /// Each job in a child of the daemon's delegated cgroup.
    Cgroup(Arc<Cgroups>),
    /// Each job in a process group; `why` says why not in a cgroup.
    ProcessGroup { why: String },
    /// `cronq check` and the like: no job runs in this process, so caps are
    /// not judged against its cgroup.
    Offline,
}

/// The set-up's outcome, once per process: the daemon moves itself into
/// its leaf cgroup only once, and a second daemon in the same process (a
/// library user's tests) gets the same answer.
static DETECTED: OnceLock<Result<Arc<Cgroups>, String>> = OnceLock::new();

impl Containment {
    /// Sets up cgroups if this process may have them (blocking I/O), and
    /// logs which mode is in force.
    pub fn detect() -> Containment {
        let detected = DETECTED.get_or_init(|| Cgroups::set_up().map(Arc::new));
        let containment = match detected {
            Ok(cgroups) => Containment::Cgroup(Arc::clone(cgroups)),
            Err(why) => Containment::ProcessGroup { why: why.clone() },
        };
        match &containment {
            Containment::Cgroup(cgroups) => tracing::info!(
                cgroup = %cgroups.dir().display(),
                memory_max = cgroups.memory(),
                tasks_max = cgroups.pids(),
                "command jobs run each in a cgroup of its own, ended as a whole"
            ),
            Containment::ProcessGroup { why } => tracing::info!(
                reason = %why,
                "command jobs run each in a process group of its own, not a cgroup: {why}"
            ),
            Containment::Offline => {}
        }
        if let Containment::Cgroup(cgroups) = &containment
            && let Some(missing) = cgroups.missing()
        {
            tracing::info!("command jobs cannot be given memory or task caps: {missing}");
        }
        containment
    }

    /// Held in process groups, with `why`: for embedders and tests.
    pub fn process_group(why: impl Into<String>) -> Containment {
        Containment::ProcessGroup { why: why.into() }
    }

    pub fn cgroups(&self) -> Option<&Cgroups> {
        match self {
            Containment::Cgroup(cgroups) => Some(cgroups),
            _ => None,
        }
    }

    /// A few words for the handler's description: where jobs run.
    pub fn summary(&self) -> String {
        match self {
            Containment::Cgroup(cgroups) => {
                format!(
                    "each job in a cgroup of its own under {}",
                    cgroups.dir().display()
                )
            }
            Containment::ProcessGroup { why } => {
                format!("each job in a process group of its own ({why})")
            }
            Containment::Offline => "not judged here".to_string(),
        }
    }

    /// Why a memory cap cannot be enforced here, or `None` if it can.
    pub fn memory_refusal(&self) -> Option<String> {
        self.refusal("memory", Cgroups::memory)
    }

    /// Why a task cap cannot be enforced here, or `None` if it can.
    pub fn tasks_refusal(&self) -> Option<String> {
        self.refusal("pids", Cgroups::pids)
    }

    fn refusal(&self, controller: &str, on: fn(&Cgroups) -> bool) -> Option<String> {
        match self {
            Containment::Offline => None,
            Containment::Cgroup(cgroups) if on(cgroups) => None,
            Containment::Cgroup(cgroups) => Some(
                cgroups
                    .missing()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("the {controller} controller is not enabled")),
            ),
            Containment::ProcessGroup { why } => Some(format!(
                "command jobs run in process groups here, not cgroups: {why}"
            )),
        }
    }
}
