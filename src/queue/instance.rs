//! Who this daemon is, and whether another registered daemon is alive.
//!
//! A reservation names the instance that holds it. After a `kill -9` the
//! next start finds the previous life's instance row; waiting out the
//! reservation timeout (5 minutes) before running its jobs again would be
//! needlessly slow, so the liveness of an instance on this machine is
//! decided by its process: within this boot and pid namespace a pid whose
//! start time differs is a reused pid, not the holder.
//!
//! What "another kernel" means depends on the database. SQLite's WAL needs
//! every process on one kernel, so on a file a row from another boot is a
//! previous life of this machine, and dead. A database many hosts share
//! (PostgreSQL) holds live nodes on other hosts, whose boot ids are theirs:
//! there the process checks apply only to a row of this host and this boot,
//! and every other instance is judged by its heartbeat alone, against the
//! database's clock (the store moves instants into its frame). So is an
//! instance in another pid namespace (a container).

use crate::clock::Millis;
use crate::store::instance::InstanceRow;

/// This process's identity.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub host: String,
    /// The kernel's boot id and this process's pid namespace, `BOOT:NS`.
    pub boot_id: String,
    pub pid: i64,
    pub start_ticks: i64,
    pub started: Millis,
}

impl Instance {
    pub fn current(now: Millis) -> Instance {
        let pid = std::process::id() as i64;
        Instance {
            id: crate::queue::job::new_id(),
            host: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into()),
            boot_id: format!(
                "{}:{}",
                read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
                pid_namespace("self").unwrap_or_default()
            ),
            pid,
            start_ticks: start_ticks("self").unwrap_or(0),
            started: now,
        }
    }

    /// This process's row as of `now`, without its workers (the queue's to
    /// fill in: see `Queue::register`).
    pub fn row(&self, now: Millis) -> InstanceRow {
        InstanceRow {
            id: self.id.clone(),
            host: self.host.clone(),
            boot_id: self.boot_id.clone(),
            pid: self.pid,
            start_ticks: self.start_ticks,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: self.started,
            heartbeat_at: now,
            workers_max: 0,
            workers_busy: 0,
            clock_offset_ms: 0,
        }
    }

    /// Whether `other`, a registered instance, is dead: its heartbeat is
    /// older than `stale_after_ms`, or its process is provably gone.
    /// `shared`: whether daemons on other hosts may share the database
    /// (`Backend::shared`); see the module docs.
    pub fn judges_dead(
        &self,
        other: &InstanceRow,
        now: Millis,
        stale_after_ms: i64,
        shared: bool,
    ) -> bool {
        if other.id == self.id {
            return false;
        }
        if other.heartbeat_at < now - stale_after_ms {
            return true;
        }
        let (my_boot, my_ns) = split_boot(&self.boot_id);
        let (its_boot, its_ns) = split_boot(&other.boot_id);
        let same_kernel =
            !my_boot.is_empty() && its_boot == my_boot && (!shared || other.host == self.host);
        if !same_kernel {
            // On a file only this kernel shares, another boot is a previous
            // life; on a shared database it may be a live node elsewhere.
            return !shared && !my_boot.is_empty();
        }
        if my_ns.is_empty() || its_ns != my_ns {
            return false;
        }
        start_ticks(&other.pid.to_string()) != Some(other.start_ticks)
    }
}

fn split_boot(value: &str) -> (&str, &str) {
    value.split_once(':').unwrap_or((value, ""))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn pid_namespace(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks
/// after boot. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its closing parenthesis.
fn start_ticks(pid: &str) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn a_live_process_is_alive_and_a_dead_one_is_dead() {
        let me = Instance::current(NOW);
        assert!(me.start_ticks > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let other = InstanceRow {
            id: "other".into(),
            pid: child.id() as i64,
            start_ticks: start_ticks(&pid).unwrap(),
            ..me.row(NOW)
        };
        assert!(!me.judges_dead(&other, NOW, 60_000, false));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(me.judges_dead(&other, NOW, 60_000, false));
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let me = Instance::current(NOW);
        let other = InstanceRow {
            id: "other".into(),
            start_ticks: me.start_ticks + 1,
            ..me.row(NOW)
        };
        assert!(me.judges_dead(&other, NOW, 60_000, false));
    }

    #[test]
    fn another_boot_is_dead_and_another_namespace_is_judged_by_heartbeat() {
        let me = Instance::current(NOW);
        let (boot, _) = split_boot(&me.boot_id);
        let rebooted = InstanceRow {
            id: "old".into(),
            boot_id: format!("another-boot:{}", pid_namespace("self").unwrap()),
            ..me.row(NOW)
        };
        assert!(me.judges_dead(&rebooted, NOW, 60_000, false));
        let container = InstanceRow {
            id: "box".into(),
            boot_id: format!("{boot}:pid:[1]"),
            pid: 1,
            start_ticks: 0,
            ..me.row(NOW)
        };
        assert!(!me.judges_dead(&container, NOW, 60_000, false));
        let silent = InstanceRow {
            heartbeat_at: NOW - 61_000,
            ..container
        };
        assert!(me.judges_dead(&silent, NOW, 60_000, false));
        assert!(!me.judges_dead(&me.row(NOW - 1_000_000), NOW, 60_000, false));
    }

    #[test]
    fn on_a_shared_database_a_node_on_another_host_is_judged_by_its_heartbeat_alone() {
        let me = Instance::current(NOW);
        // A live node elsewhere: another host, its own boot id and pid space,
        // a pid that means nothing here.
        let remote = InstanceRow {
            id: "remote".into(),
            host: format!("not-{}", me.host),
            boot_id: "another-boot:pid:[4026531836]".into(),
            pid: 999_999,
            start_ticks: 1,
            ..me.row(NOW - 10_000)
        };
        assert!(!me.judges_dead(&remote, NOW, 60_000, true));
        let silent = InstanceRow {
            heartbeat_at: NOW - 61_000,
            ..remote.clone()
        };
        assert!(me.judges_dead(&silent, NOW, 60_000, true));
        // Same host name, another boot: a twin or a previous life, which
        // only the heartbeat can tell apart on a shared database.
        let twin = InstanceRow {
            host: me.host.clone(),
            ..remote.clone()
        };
        assert!(!me.judges_dead(&twin, NOW, 60_000, true));
        // This host and boot: its process is checked, as on a file.
        let gone = InstanceRow {
            id: "gone".into(),
            start_ticks: me.start_ticks + 1,
            ..me.row(NOW)
        };
        assert!(me.judges_dead(&gone, NOW, 60_000, true));
        // On a file, another boot is this machine's previous life.
        assert!(me.judges_dead(&remote, NOW, 60_000, false));
    }
}
