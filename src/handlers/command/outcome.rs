//! How a command ended, in words for the job's error: its exit status, the
//! signal that killed it by name, and what the kernel counted in its
//! cgroup (out-of-memory kills, forks refused at its task cap).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::cgroup::Deaths;

/// `exit status: 3`, `killed by signal 9 (SIGKILL)`, plus the task cap when
/// the job ran into it.
pub fn describe(status: ExitStatus, deaths: Deaths, tasks_max: Option<u64>) -> String {
    let mut text = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status: {code}"),
        (None, Some(signal)) => {
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by signal {signal} ({}){core}", signal_name(signal))
        }
        (None, None) => status.to_string(),
    };
    if deaths.forks_refused > 0 {
        let cap = tasks_max.map_or_else(String::new, |n| format!(" {n}"));
        text.push_str(&format!(
            "; it reached its task cap (tasks_max{cap}): {} fork(s) refused",
            deaths.forks_refused
        ));
    }
    text
}

/// The name of a Linux signal, e.g. `SIGKILL` for 9.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        n if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) => {
            return format!("SIGRTMIN+{}", n - libc::SIGRTMIN());
        }
        _ => "unknown signal",
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn statuses_in_words() {
        let none = Deaths::default();
        assert_eq!(describe(exited(3), none, None), "exit status: 3");
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGKILL), none, None),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGSEGV | 0x80), none, None),
            "killed by signal 11 (SIGSEGV), core dumped"
        );
        let capped = Deaths {
            oom_kills: 0,
            forks_refused: 42,
        };
        assert_eq!(
            describe(exited(1), capped, Some(16)),
            "exit status: 1; it reached its task cap (tasks_max 16): 42 fork(s) refused"
        );
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGSYS), "SIGSYS");
        assert_eq!(signal_name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(signal_name(0), "unknown signal");
    }
}
