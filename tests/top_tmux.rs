//! `cronq top` as a person sees it: the real binary in a real terminal
//! (tmux), against a real daemon. Jobs enqueued over the socket appear on
//! the screen, `r` on a dead job retries it through the daemon, and `q`
//! gives the shell its screen and prompt back.
//!
//! The daemon speaks `watch`, so this runs on live events; the test asks
//! the daemon and expects the status line that goes with its answer, so it
//! also passes against a daemon on the polling fallback.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::json;

const PROMPT: &str = "top-test$";

/// A tmux server of the test's own (its own socket), one session.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, width: u16, height: u16) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let shell = format!("env PS1='{PROMPT} ' bash --norc --noprofile");
        let (w, h) = (width.to_string(), height.to_string());
        tmux.run(&["new-session", "-d", "-s", "T", "-x", &w, "-y", &h, &shell]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .env_remove("CRONQ_SOCKET")
            .env("NO_COLOR", "1")
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "T", "-l", text]);
        self.run(&["send-keys", "-t", "T", "Enter"]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "T"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "T"])
    }

    /// Waits up to 30 s for the screen to satisfy `check`.
    fn until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn top_shows_jobs_retries_a_dead_one_and_quits_cleanly() {
    if !tools::have("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::on_dir(
        dir.path(),
        &[("JOB_COMMAND_ALLOW", "/usr/bin/sleep:/usr/bin/test")],
    );
    let flag = dir.path().join("flag");
    let sleeper = d.ok(json!({"cmd": "enqueue", "name": "tmux_sleeper",
        "payload": {"type": "command", "data": {"argv": ["/usr/bin/sleep", "20"]}, "options": {"timeout": 60}}}));
    let flaky = d.ok(json!({"cmd": "enqueue", "name": "tmux_flaky",
        "payload": {"type": "command", "data": {"argv": ["/usr/bin/test", "-e", flag]}, "options": {"retry_count": 0}}}));
    let flaky = flaky["job"]["id"].as_str().unwrap().to_string();
    d.until(Duration::from_secs(20), "the flaky job to die", |d| {
        d.job(&flaky).filter(|j| j["status"] == "dead")
    });

    let tmux = Tmux::start(dir.path(), 120, 40);
    tmux.until("the shell", |s| s.contains(PROMPT));
    tmux.type_line("echo BEFORE-TOP");
    let command = format!("{} top --socket {}", daemon::BIN, d.socket.display());
    tmux.type_line(&command);

    // The polling fallback (or `watch`, once the daemon has it) fills
    // the running, crons and failures panes.
    let screen = tmux.until("the jobs on the screen", |s| {
        s.contains("tmux_sleeper") && s.contains("tmux_flaky") && s.contains("system_queue")
    });
    let sleeper_id = sleeper["job"]["id"].as_str().unwrap();
    assert!(screen.contains(sleeper_id), "{screen}");
    assert!(
        screen.contains("▶ Running"),
        "Running is focused first:\n{screen}"
    );
    let live = d.request(json!({"cmd": "watch"}))["ok"] == true;
    let mode = if live {
        "● live"
    } else {
        "live events unavailable"
    };
    assert!(screen.contains(mode), "expected {mode:?}:\n{screen}");

    // r on the dead job: the daemon retries it, and now it succeeds.
    std::fs::write(&flag, "").unwrap();
    tmux.keys(&["Tab", "Tab"]);
    tmux.until("the failures pane focused", |s| {
        s.contains("▶ Recent failures")
    });
    tmux.keys(&["r"]);
    let answer = format!("retry {flaky}: job {flaky} is pending again");
    tmux.until("the daemon's answer in the status line", |s| {
        s.contains(&answer)
    });
    d.until(
        Duration::from_secs(20),
        "the retried job to succeed",
        |d| match d.job(&flaky) {
            None => Some(()),
            Some(j) if j["status"] == "succeeded" => Some(()),
            Some(_) => None,
        },
    );
    tmux.until("the failure gone from the screen", |s| {
        !s.contains("tmux_flaky")
    });

    // q: the shell's screen and prompt are back, the terminal sane.
    tmux.keys(&["q"]);
    // The shell prints its prompt a moment after top has left the
    // alternate screen: wait for both.
    tmux.until("the shell's screen and a fresh prompt", |s| {
        has_line(s, "BEFORE-TOP") && !s.contains("Recent failures") && last_line(s) == PROMPT
    });
    tmux.type_line("stty -a; echo AFTER-TOP");
    let screen = tmux.until("stty's answer", |s| has_line(s, "AFTER-TOP"));
    assert_sane(&screen);

    // Ctrl-C and SIGTERM end it the same way.
    for how in ["Ctrl-C", "SIGTERM"] {
        tmux.type_line(&format!("clear; {command}; echo EXITED-{how}"));
        tmux.until("top again", |s| s.contains("Recent failures"));
        if how == "Ctrl-C" {
            tmux.keys(&["C-c"]);
        } else {
            let shell: u32 = tmux
                .run(&["display-message", "-p", "-t", "T", "#{pane_pid}"])
                .trim()
                .parse()
                .expect("the shell's pid");
            let top = children(shell)
                .into_iter()
                .next()
                .expect("top runs under the shell");
            // SAFETY: kill with a pid this test's tmux started and a valid signal.
            assert_eq!(unsafe { libc::kill(top as i32, libc::SIGTERM) }, 0);
        }
        let done = format!("EXITED-{how}");
        tmux.until("the shell after top", |s| has_line(s, &done));
        tmux.type_line("stty -a; echo AFTER-TOP");
        assert_sane(&tmux.until("stty's answer", |s| has_line(s, "AFTER-TOP")));
    }
}

/// The screen's last non-blank line.
fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

/// Whether a line of the screen is `text` (not a command that prints it).
fn has_line(screen: &str, text: &str) -> bool {
    screen.lines().any(|l| l.trim_end() == text)
}

/// `stty -a` shows a cooked terminal: canonical input and echo are back.
fn assert_sane(screen: &str) {
    assert!(
        screen.contains(" icanon") && screen.contains(" echo "),
        "the terminal was left in raw mode:\n{screen}"
    );
}

/// The child processes of `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
