//! cgroup v2 for command jobs: the daemon's delegated cgroup, and one child
//! cgroup per job.
//!
//! Under systemd with `Delegate=yes` the service's cgroup is the daemon's to
//! divide. Once controllers are enabled below a cgroup, cgroup v2 lets only
//! leaves hold processes (the "no internal processes" rule), so the daemon
//! first moves itself into a leaf of its own, then enables the memory and
//! pids controllers for its children, and runs each job in a child:
//!
//! ```text
//! cronq.service/          delegated; cgroup.subtree_control: +memory +pids
//!   daemon/               the daemon itself
//!   job-<id>-<attempt>/   one command job: memory.max, pids.max
//! ```
//!
//! A job's cgroup holds every process the job starts, however it detaches
//! (`setsid`, a double fork), so `cgroup.kill` ends them all at once and
//! `cgroup.events` says when they are gone. The child joins its cgroup
//! before it execs (see `processes`), so nothing of the job ever runs
//! outside it.
//!
//! The choice a reader may question is how carefully a cgroup is judged to
//! be ours: a daemon that split a cgroup systemd still manages would fight
//! systemd over it. It must be marked delegated (systemd sets the
//! `user.delegate` or `trusted.delegate` attribute, or owns it to the
//! unit's unprivileged user, which it does only for delegated units), be
//! writable (`ProtectControlGroups=yes` mounts it read-only), and have
//! `cgroup.kill` (Linux 5.14); `delegation` judges that. Anything less
//! leaves jobs in process groups.

mod delegation;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The leaf the daemon moves itself into.
const DAEMON_LEAF: &str = "daemon";
/// Job cgroups are named `job-<id>-<attempt>`; start-up sweeps leftovers.
const JOB_PREFIX: &str = "job-";

/// The daemon's delegated cgroup, with the controllers its jobs get.
#[derive(Debug)]
pub struct Cgroups {
    dir: PathBuf,
    memory: bool,
    pids: bool,
    /// Why a controller is missing, for the log and for refusals.
    missing: Option<String>,
}

impl Cgroups {
    /// Finds the daemon's cgroup, checks it is delegated to it, moves the
    /// daemon into its leaf and enables the controllers. `Err` says why
    /// jobs cannot have cgroups here, for the log line.
    pub fn set_up() -> Result<Cgroups, String> {
        let dir = delegation::own_delegated_cgroup()?;
        move_into_leaf(&dir)?;
        let mut cgroups = Cgroups {
            dir,
            memory: false,
            pids: false,
            missing: None,
        };
        cgroups.enable_controllers();
        let swept = cgroups.sweep();
        if swept > 0 {
            tracing::info!(
                cgroups = swept,
                "removed job cgroups left by a previous run, ending what was in them"
            );
        }
        Ok(cgroups)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `memory.max` can be set on a job.
    pub fn memory(&self) -> bool {
        self.memory
    }

    /// Whether `pids.max` can be set on a job.
    pub fn pids(&self) -> bool {
        self.pids
    }

    /// Why the memory or pids controller is unavailable, if one is.
    pub fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }

    /// Makes the cgroup `name` with the given caps, ready for a child to
    /// join. A leftover of that name that is empty is replaced; one that
    /// still holds processes is an error (it is some other job's).
    pub fn create(
        &self,
        name: &str,
        memory_max: Option<u64>,
        tasks_max: Option<u64>,
    ) -> io::Result<JobCgroup> {
        let dir = self.dir.join(name);
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() != io::ErrorKind::AlreadyExists || populated(&dir) {
                return Err(context(&dir, e));
            }
            fs::remove_dir(&dir).map_err(|e| context(&dir, e))?;
            fs::create_dir(&dir).map_err(|e| context(&dir, e))?;
        }
        let set_up = || -> io::Result<File> {
            if self.memory {
                if let Some(bytes) = memory_max {
                    write_file(&dir.join("memory.max"), &bytes.to_string())?;
                    // The cap is one of memory, not memory plus swap: a job
                    // at its cap is ended, rather than left to thrash.
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write_file(&swap, "0")?;
                    }
                }
                // On an out-of-memory kill the whole job goes, not one
                // process of it chosen by the kernel.
                write_file(&dir.join("memory.oom.group"), "1")?;
            }
            if self.pids
                && let Some(n) = tasks_max
            {
                write_file(&dir.join("pids.max"), &n.to_string())?;
            }
            let procs = dir.join("cgroup.procs");
            OpenOptions::new()
                .write(true)
                .open(&procs)
                .map_err(|e| context(&procs, e))
        };
        match set_up() {
            Ok(procs) => Ok(JobCgroup { dir, procs }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Enables memory and pids for the children, as far as they are
    /// delegated, and records which are on.
    fn enable_controllers(&mut self) {
        let available = fs::read_to_string(self.dir.join("cgroup.controllers")).unwrap_or_default();
        let mut missing = Vec::new();
        for controller in ["memory", "pids"] {
            if !available.split_whitespace().any(|c| c == controller) {
                missing.push(format!(
                    "the {controller} controller is not delegated to {} (cgroup.controllers: {:?})",
                    self.dir.display(),
                    available.trim()
                ));
                continue;
            }
            if let Err(e) = write_file(
                &self.dir.join("cgroup.subtree_control"),
                &format!("+{controller}"),
            ) {
                missing.push(format!("cannot enable the {controller} controller: {e}"));
            }
        }
        let enabled =
            fs::read_to_string(self.dir.join("cgroup.subtree_control")).unwrap_or_default();
        let on = |c: &str| enabled.split_whitespace().any(|e| e == c);
        self.memory = on("memory");
        self.pids = on("pids");
        self.missing = (!missing.is_empty()).then(|| missing.join("; "));
    }

    /// Ends and removes job cgroups a previous run left (a daemon killed
    /// outright, where systemd did not clean up); returns how many.
    fn sweep(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut swept = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.as_bytes().starts_with(JOB_PREFIX.as_bytes()) || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            let _ = write_file(&dir.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(2);
            while populated(&dir) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            match fs::remove_dir(&dir) {
                Ok(()) => swept += 1,
                Err(e) => tracing::warn!(
                    cgroup = %dir.display(),
                    "cannot remove a job cgroup left by a previous run: {e}"
                ),
            }
        }
        swept
    }
}

/// One job's cgroup. The child joins it through `procs_fd`; the processes
/// module ends and removes it.
#[derive(Debug)]
pub struct JobCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened for the child, which writes "0" (itself) to
    /// it before exec.
    procs: File,
}

/// What the kernel counted while a job ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deaths {
    /// Processes killed for reaching `memory.max` (memory.events oom_kill).
    pub oom_kills: u64,
    /// Forks refused for reaching `pids.max` (pids.events max).
    pub forks_refused: u64,
}

impl JobCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Whether any process of the job is still alive.
    pub fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// SIGKILL to every process in the cgroup at once.
    pub fn kill(&self) -> io::Result<()> {
        write_file(&self.dir.join("cgroup.kill"), "1")
    }

    /// The kernel's counts; zero where a controller is off.
    pub fn deaths(&self) -> Deaths {
        let count = |file: &str, key: &str| {
            fs::read_to_string(self.dir.join(file))
                .ok()
                .and_then(|text| event_count(&text, key))
                .unwrap_or(0)
        };
        Deaths {
            oom_kills: count("memory.events", "oom_kill"),
            forks_refused: count("pids.events", "max"),
        }
    }

    /// Removes the (empty) cgroup.
    pub fn remove(self) -> io::Result<()> {
        let JobCgroup { dir, procs } = self;
        drop(procs);
        fs::remove_dir(&dir).map_err(|e| context(&dir, e))
    }
}

/// A job's cgroup name from its id and attempt. Ids from the queue are
/// `[a-z0-9]`; a row another program inserted may hold anything, so other
/// characters become `_` and the id is cut to 64 characters (a clash of two
/// such ids is refused by `create`, never shared).
pub fn job_cgroup_name(id: &str, attempt: u32) -> String {
    let id: String = id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{JOB_PREFIX}{id}-{attempt}")
}

/// Moves the whole daemon (all its threads) into `dir/daemon`.
fn move_into_leaf(dir: &Path) -> Result<(), String> {
    let leaf = dir.join(DAEMON_LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", leaf.display())),
    }
    write_file(&leaf.join("cgroup.procs"), &std::process::id().to_string())
        .map_err(|e| format!("cannot move the daemon into {}: {e}", leaf.display()))
}

fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .ok()
        .and_then(|text| event_count(&text, "populated"))
        .is_some_and(|n| n > 0)
}

/// The value of `key` in a flat-keyed cgroup file (`populated 1`, `oom_kill 2`).
fn event_count(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// One write, as cgroup files want it: the whole value in a single write(2).
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| context(path, e))
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_are_read_by_key() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(event_count(events, "oom_kill"), Some(2));
        assert_eq!(event_count(events, "max"), Some(3));
        assert_eq!(event_count(events, "oom"), Some(1));
        assert_eq!(event_count(events, "absent"), None);
        assert_eq!(event_count("populated 1\nfrozen 0\n", "populated"), Some(1));
    }

    #[test]
    fn job_cgroup_names_are_safe_path_components() {
        assert_eq!(job_cgroup_name("abc123xyz", 2), "job-abc123xyz-2");
        assert_eq!(job_cgroup_name("../../etc", 1), "job-______etc-1");
        assert_eq!(job_cgroup_name("a/b c", 1), "job-a_b_c-1");
        let long = "x".repeat(300);
        assert_eq!(job_cgroup_name(&long, 1).len(), "job-".len() + 64 + 2);
    }
}
