//! How the examples of one document become one shell session, for
//! tests/doc_examples.rs: the installed system's paths placed under the
//! test's root, daemon lines handed to a helper that runs the daemon in the
//! background, `cargo run --release --` read as `cronq`, and the test-owned
//! shell functions and stand-ins the session calls.

use std::fmt::Write as _;
use std::path::Path;

use super::examples::{Doc, Kind};

/// Absolute paths of the installed system, placed under the test's root.
const ROOT_PATHS: [&str; 6] = [
    "/etc/cronq",
    "/var/lib/cronq",
    "/run/cronq",
    "/usr/share/cronq",
    "/usr/local/bin",
    "/srv",
];

/// Places the installed system's absolute paths under `root`, where a path
/// starts (after a blank, a quote, `=`, `:` or a bracket).
pub fn rewrite_paths(text: &str, root: &Path) -> String {
    let root = root.display().to_string();
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    'scan: while i < text.len() {
        let starts_path = i == 0 || b" \t\n\"'=:([,`".contains(&bytes[i - 1]);
        if starts_path {
            for prefix in ROOT_PATHS {
                let ends = bytes.get(i + prefix.len()).copied();
                let whole =
                    ends.is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                if text[i..].starts_with(prefix) && whole {
                    out.push_str(&root);
                    out.push_str(prefix);
                    i += prefix.len();
                    continue 'scan;
                }
            }
        }
        let c = text[i..].chars().next().expect("a char");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Single-quotes `text` for sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A line that starts the daemon: its variables, or `None`.
fn daemon_line(line: &str) -> Option<Vec<String>> {
    let code = match line.find(" #") {
        Some(at) => &line[..at],
        None => line,
    };
    let mut words: Vec<&str> = code.split_whitespace().collect();
    if words.last() == Some(&"&") {
        words.pop();
    }
    let command = words.iter().position(|w| !w.contains('='))?;
    let rest = &words[command..];
    let starts =
        rest == ["cronq", "daemon"] || rest == ["cargo", "run", "--release", "--", "daemon"];
    starts.then(|| words[..command].iter().map(|w| w.to_string()).collect())
}

/// One block as it runs in the script: daemon lines handed to `__daemon`,
/// `cargo run --release --` as the binary under test.
fn shell_text(at: &str, text: &str) -> String {
    let mut out = String::new();
    let mut continued = false;
    for line in text.lines() {
        let line = line.replace("cargo run --release -- ", "cronq ");
        let vars = if continued { None } else { daemon_line(&line) };
        if let Some(vars) = vars {
            assert!(
                !vars.iter().any(|v| v.contains(['\'', '"'])),
                "{at}: a daemon line's variables are plain NAME=value words; \
                 export a quoted value on a line before: {line:?}"
            );
            let args: Vec<String> = vars.iter().map(|v| quote(v)).collect();
            out.push_str(&format!("__daemon {}\n", args.join(" ")));
        } else {
            assert!(
                !line.contains("cronq daemon") && !line.contains("-- daemon"),
                "{at}: a line that starts the daemon must be one line, \
                 [NAME=value ...] cargo run --release -- daemon, or cronq daemon [&]: {line:?}"
            );
            assert!(
                !line.split_whitespace().any(|w| w == "cargo"),
                "{at}: only `cargo run --release -- ARGS` can run in a test; mark the block \
                 <!-- example: skip: REASON -->: {line:?}"
            );
            out.push_str(&line);
            out.push('\n');
        }
        continued = line.ends_with('\\');
    }
    assert!(!continued, "{at}: the block ends with a continued line");
    out
}

/// The whole session: the prelude, each block, the epilogue.
pub fn script(name: &str, doc: &Doc) -> String {
    let mut s = String::from("set -e\n. \"$__EX/prelude.sh\"\n__daemon\n");
    for (n, block) in doc.blocks.iter().enumerate() {
        let (n, text) = (n + 1, &block.text);
        let at = format!("{name}:{}", block.line);
        match &block.kind {
            Kind::Skip(reason) => {
                let _ = writeln!(s, "# example {n} ({at}) is skipped: {reason}");
            }
            Kind::Shell => {
                let _ = write!(
                    s,
                    "__block {n} {}\n{{\n{}}} >\"$__EX/out.{n}\"\n",
                    quote(&at),
                    shell_text(&at, text)
                );
            }
            Kind::Python => {
                let _ = write!(
                    s,
                    "__block {n} {}\npython3 - >\"$__EX/out.{n}\" <<'__CRONQ_EXAMPLE__'\n{text}__CRONQ_EXAMPLE__\n",
                    quote(&at)
                );
            }
            Kind::Toml(env) => {
                let vars: Vec<String> = env
                    .iter()
                    .map(|(k, v)| quote(&format!("{k}={v}")))
                    .collect();
                let _ = write!(
                    s,
                    "__block {n} {at_q}\ncat >\"$__EX/example-{n}.toml\" <<'__CRONQ_EXAMPLE__'\n{text}__CRONQ_EXAMPLE__\n\
                     env {vars} cronq check \"$__EX/example-{n}.toml\" >\"$__EX/out.{n}\"\n",
                    at_q = quote(&at),
                    vars = vars.join(" ")
                );
            }
        }
    }
    s.push_str("__epilogue\n");
    s
}

/// Test-owned shell functions the script calls between the examples.
pub const PRELUDE: &str = r#"
__block() {
    __EXAMPLE=$1
    export __EXAMPLE
    echo "== example $1 ($2)" >&2
}

# Stops the daemon this script started, if any, and starts one with "$@"
# (NAME=value words), in the background; returns once it answers.
__daemon() {
    if [ -n "${__DAEMON_PID:-}" ]; then
        kill -TERM "$__DAEMON_PID"
        wait "$__DAEMON_PID" || { echo "the daemon did not stop cleanly" >&2; return 1; }
    fi
    env "$@" cronq daemon >>"$__EX/daemon.log" 2>&1 &
    __DAEMON_PID=$!
    echo "$__DAEMON_PID" >>"$__EX/daemon.pids"
    __tries=0
    until cronq --timeout 2 ping >/dev/null 2>&1; do
        kill -0 "$__DAEMON_PID" 2>/dev/null || { echo "the daemon exited at start-up" >&2; return 1; }
        __tries=$((__tries + 1))
        [ "$__tries" -lt 300 ] || { echo "the daemon did not answer in 30 s" >&2; return 1; }
        sleep 0.1
    done
}

# Every example ran: the test checks what they did, then says done.
__epilogue() {
    echo "== every example ran" >&2
    : >"$__EX/epilogue"
    until [ -e "$__EX/done" ]; do sleep 0.1; done
    kill -TERM "$__DAEMON_PID"
    wait "$__DAEMON_PID"
}
"#;

/// A stand-in for a site's backup script, which the examples allow and run.
pub const BACKUP: &str = "#!/bin/sh\necho \"backup $*\"\n";

/// The examples' daemon runs as the test's user, who stands for the `cronq`
/// user: `sudo -u cronq COMMAND` runs COMMAND, and no other sudo runs.
pub const SUDO: &str = r#"#!/bin/sh
if [ "$1" != -u ] || [ "$2" != cronq ]; then
    echo "sudo: only 'sudo -u cronq COMMAND' can run in tests/doc_examples.rs" >&2
    exit 1
fi
shift 2
exec "$@"
"#;

pub fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The real socat, each answer line also recorded with its example's number.
pub const SOCAT_WRAPPER: &str = r#"#!/bin/sh
out=$("$__REAL_SOCAT" "$@")
rc=$?
[ -z "$out" ] || printf '%s\n' "$out"
[ -z "$out" ] || printf '%s\n' "$out" | sed "s/^/${__EXAMPLE:-0}	/" >>"$__EX/socat.log"
exit $rc
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_paths_are_rewritten_where_a_path_starts() {
        let root = Path::new("/t/root");
        assert_eq!(
            rewrite_paths(
                "S=UNIX-CONNECT:/run/cronq/admin.sock \"/srv/a/\" /usr/bin/rsync /srvx /etc/cronqx",
                root
            ),
            "S=UNIX-CONNECT:/t/root/run/cronq/admin.sock \"/t/root/srv/a/\" /usr/bin/rsync /srvx /etc/cronqx"
        );
    }

    #[test]
    fn daemon_lines_are_recognised() {
        assert_eq!(daemon_line("cronq daemon &"), Some(vec![]));
        assert_eq!(
            daemon_line(
                "JOB_COMMAND_ALLOW=/usr/bin/rsync cargo run --release -- daemon   # comment"
            ),
            Some(vec!["JOB_COMMAND_ALLOW=/usr/bin/rsync".to_string()])
        );
        assert_eq!(daemon_line("cronq daemon --help"), None);
        assert_eq!(daemon_line("cronq status"), None);
    }
}
