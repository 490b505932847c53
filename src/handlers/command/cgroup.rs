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
//! `cgroup.kill` (Linux 5.14). Anything less leaves jobs in process groups.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let path =
            unified_path(&own).ok_or("this system has no cgroup v2 hierarchy (cgroup v1 only)")?;
        if path == "/" {
            return Err("the daemon is in the root cgroup, which is nobody's to divide".into());
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let dir = cgroup_dir(&mountinfo, &path)
            .ok_or_else(|| format!("cgroup {path} is not under any mounted cgroup2 file system"))?;
        check_delegated(&dir)?;
        for file in ["", "cgroup.procs", "cgroup.subtree_control"] {
            let target = dir.join(file);
            if let Err(e) = access(&target, libc::W_OK) {
                return Err(format!(
                    "{} is not writable ({e}); is ProtectControlGroups= on?",
                    target.display()
                ));
            }
        }
        if !dir.join("cgroup.kill").exists() {
            return Err(format!(
                "{} has no cgroup.kill (it needs Linux 5.14 or later)",
                dir.display()
            ));
        }
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

/// The `0::PATH` line of /proc/self/cgroup: the cgroup v2 path.
fn unified_path(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// Where cgroup `path` is in the file system: below the mount point of the
/// cgroup2 mount (from /proc/self/mountinfo) whose root contains it. On a
/// "hybrid" system that mount is /sys/fs/cgroup/unified.
fn cgroup_dir(mountinfo: &str, path: &str) -> Option<PathBuf> {
    for line in mountinfo.lines() {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = mount.split_whitespace().collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let (root, point) = (unescape(root), unescape(point));
        let below = if root == "/" {
            Some(path.trim_start_matches('/'))
        } else {
            path.strip_prefix(root.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|rest| rest.trim_start_matches('/'))
        };
        if let Some(below) = below {
            return Some(Path::new(&point).join(below));
        }
    }
    None
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Whether systemd delegated `dir` to this process (see the module notes).
fn check_delegated(dir: &Path) -> Result<(), String> {
    if ["user.delegate", "trusted.delegate"]
        .iter()
        .any(|name| xattr(dir, name).as_deref() == Some(b"1".as_slice()))
    {
        return Ok(());
    }
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && meta.uid() == euid {
        return Ok(());
    }
    Err(format!(
        "{} is not delegated to cronq (set Delegate=yes in its unit)",
        dir.display()
    ))
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // buffer's length is passed with it.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    usize::try_from(n).ok().map(|n| buf[..n].to_vec())
}

fn access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path that lives across the call.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    fn the_unified_line_is_found_on_pure_and_hybrid_systems() {
        assert_eq!(
            unified_path("0::/system.slice/cronq.service\n").as_deref(),
            Some("/system.slice/cronq.service")
        );
        let hybrid = "9:name=systemd:/system.slice/cronq.service\n4:memory:/\n0::/system.slice/cronq.service\n";
        assert_eq!(
            unified_path(hybrid).as_deref(),
            Some("/system.slice/cronq.service")
        );
        assert_eq!(unified_path("4:memory:/\n1:cpu:/\n"), None);
    }

    const PURE: &str = "\
24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
";
    const HYBRID: &str = "\
47 24 0:38 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
57 47 0:39 / /sys/fs/cgroup/unified rw,nosuid shared:22 - cgroup2 cgroup rw
58 47 0:40 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";

    #[test]
    fn the_cgroup_directory_follows_the_cgroup2_mount() {
        assert_eq!(
            cgroup_dir(PURE, "/system.slice/cronq.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/cronq.service"))
        );
        assert_eq!(
            cgroup_dir(HYBRID, "/system.slice/cronq.service"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/cronq.service"
            ))
        );
        // A mount of a sub-tree (a container's view) maps below its root.
        let sub = "60 47 0:39 /payload /mnt/cg rw - cgroup2 cgroup rw\n";
        assert_eq!(
            cgroup_dir(sub, "/payload/system.slice/x.service"),
            Some(PathBuf::from("/mnt/cg/system.slice/x.service"))
        );
        assert_eq!(cgroup_dir(sub, "/payloadx/y"), None);
        assert_eq!(
            cgroup_dir("24 30 0:22 / /sys rw - sysfs sysfs rw\n", "/a"),
            None
        );
    }

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

    #[test]
    fn a_directory_that_is_not_a_delegated_cgroup_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let err = check_delegated(dir.path()).unwrap_err();
            assert!(err.contains("not delegated to cronq"), "{err}");
        } else {
            // An unprivileged owner counts as delegated, as systemd chowns
            // only delegated cgroups; a directory owned by another does not.
            assert!(check_delegated(dir.path()).is_ok());
            assert!(check_delegated(Path::new("/")).is_err());
        }
    }
}
