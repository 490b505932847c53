//! Which cgroup is the daemon's, and whether it is the daemon's to divide:
//! found from /proc/self/cgroup and /proc/self/mountinfo, then judged
//! delegated, writable and new enough (see the parent module's notes).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The directory of the daemon's own cgroup, if systemd delegated it to the
/// daemon and the daemon can use it; else why not, for the log line.
pub fn own_delegated_cgroup() -> Result<PathBuf, String> {
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
    Ok(dir)
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
