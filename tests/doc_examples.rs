//! Every example in README.md, docs/PROTOCOL.md, man/cronq.8 and
//! man/cronq.toml.5 runs as written, against a real daemon on a temp dir.
//!
//! tests/support/examples.rs finds the examples (the convention is there and
//! in README.md). Here each document's examples run in order, in one shell
//! session, as a reader types them one after another: a variable set or a
//! directory entered in one block holds in the next. Before the first block
//! the test starts the document's daemon; a block line that starts a daemon
//! (`[NAME=value ...] cargo run --release -- daemon`, `cronq daemon &`)
//! stops it and starts that one instead, in the background, as a reader
//! would in another terminal. Every answer a `socat` prints must be
//! `"ok":true` (or, where the document shows the answers, have their shape);
//! every command must exit 0; every crons file must pass `cronq check`.
//!
//! What the test supplies, and why:
//! - `cronq` on PATH is the binary under test, and `cargo run --release --`
//!   is read as `cronq` (the same program, without building a release).
//! - The installed system's directories (/etc/cronq, /var/lib/cronq,
//!   /run/cronq, /usr/share/cronq) and the places examples read or write
//!   (/srv, /usr/local/bin) are directories of the test's temp dir, so
//!   nothing on the machine is touched; /usr/share/cronq holds the package's
//!   templates and /srv/a one file, as on a machine the examples suit.
//!   `CRONQ_SOCKET` points at the examples' daemon, so a cronq installed on
//!   the machine is never reached.
//! - `SMTP_PORT=8025` (the local catch-all the README suggests) is the
//!   test's real aiosmtpd (tests/support/smtp.rs) on a free port, and the
//!   mail the examples send must arrive there.
//! - `socat` is the real one behind a wrapper that records each answer.
//! - `DATABASE_URL`, the application's connection string in the examples
//!   that enqueue from SQL (psql, Python), names a fresh database on a
//!   PostgreSQL server the test starts (`cronq::store::postgres::testing`),
//!   served by a second daemon the test runs on it, as the cronq hosts of
//!   README's "Several machines" would be: with the mail settings the
//!   examples' own daemon is given, so what the SQL enqueues is sent to the
//!   test's SMTP server. The examples' own daemon stays on its SQLite file.
//! - `python3` runs the ```` ```python ```` blocks: the test's Python
//!   (`CRONQ_TEST_PYTHON`), which must import what the blocks import.
//! - The daemon runs as the test's user, who stands for the `cronq` user:
//!   `sudo -u cronq COMMAND` runs COMMAND (and no other `sudo` runs).
//!   /usr/local/bin/backup, which cronq(8) runs, is a script that succeeds.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/examples.rs"]
mod examples;
#[path = "support/session.rs"]
mod session;
#[path = "support/smtp.rs"]
#[allow(dead_code)]
mod smtp;
#[path = "support/tools.rs"]
mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use examples::{Doc, Kind, Layout};
use serde_json::{Value, json};
use session::{BACKUP, PRELUDE, SOCAT_WRAPPER, SUDO, executable, rewrite_paths, script};
use smtp::SmtpServer;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The SMTP port the documents use for a local catch-all server.
const DOC_SMTP_PORT: &str = "SMTP_PORT=8025";

/// The programs an example may need beyond the shell and coreutils.
const TOOLS: [&str; 4] = ["socat", "jq", "rsync", "psql"];

/// How long one document's examples may take.
const DEADLINE: Duration = Duration::from_secs(300);

/// One document's examples, run.
struct Run {
    name: &'static str,
    /// The checkout the examples run in (their working directory).
    work: PathBuf,
    /// Stands for `/`: the installed system's directories are here.
    root: PathBuf,
    /// The test's own files: the script, outputs, logs.
    ex: PathBuf,
    socket: PathBuf,
    smtp: Option<SmtpServer>,
    /// The PostgreSQL database the SQL examples write, and the daemon on it.
    app: Option<(daemon::Backend, daemon::Daemon)>,
    shell: Option<Child>,
    temp: Option<tempfile::TempDir>,
}

impl Run {
    /// Runs the examples of `name`; `None` when a tool they need is missing
    /// (the test then skips, loudly).
    fn start(name: &'static str) -> Option<Run> {
        let temp = tempfile::tempdir().expect("temp dir");
        let base = temp.path().to_path_buf();
        let (work, root, ex) = (base.join("work"), base.join("root"), base.join("examples"));
        let original = std::fs::read_to_string(Path::new(REPO).join(name)).expect("the document");
        let smtp = if original.contains(DOC_SMTP_PORT) {
            match SmtpServer::start(&[]) {
                Some(server) => Some(server),
                None => {
                    smtp::skip(name);
                    return None;
                }
            }
        } else {
            None
        };
        let mut text = rewrite_paths(&original, &root);
        if let Some(server) = &smtp {
            text = text.replace(DOC_SMTP_PORT, &format!("SMTP_PORT={}", server.port));
        }
        let doc = if name.ends_with(".md") {
            examples::markdown(name, &text)
        } else {
            examples::roff(name, &text)
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let runnable: String = doc
            .blocks
            .iter()
            .filter(|b| !matches!(b.kind, Kind::Skip(_)))
            .map(|b| b.text.as_str())
            .collect();
        for tool in TOOLS {
            if runnable.contains(tool) && !tools::have(tool) {
                eprintln!("SKIPPED the examples of {name}: they use {tool}");
                return None;
            }
        }

        let python = match python_modules(&doc) {
            Some(modules) => match tools::python_with(&modules) {
                Some(python) => Some(python),
                None => return None,
            },
            None => None,
        };
        let app_database = uses_app_database(&runnable);
        let backend = if app_database {
            match daemon::Backend::postgres() {
                Some(backend) => Some(backend),
                None => return None,
            }
        } else {
            None
        };

        let socket = match doc.layout {
            Layout::Checkout => work.join("cronq-data/admin.sock"),
            Layout::Installed => root.join("run/cronq/admin.sock"),
        };
        let mut run = Run {
            name,
            work,
            root,
            ex,
            socket,
            smtp,
            app: None,
            shell: None,
            temp: Some(temp),
        };
        run.lay_out();
        if let Some(python) = python {
            // A wrapper, not a link: a venv's Python finds its packages only
            // when started by its own path.
            let wrapper = format!("#!/bin/sh\nexec '{}' \"$@\"\n", python.display());
            executable(&run.ex.join("bin/python3"), &wrapper);
        }
        if let Some(backend) = backend {
            let app = run.start_app_daemon(&backend);
            run.app = Some((backend, app));
        }
        run.spawn(&doc);
        run.wait_for_epilogue();
        run.check_answers(&doc);
        Some(run)
    }

    /// The checkout, the installed system's directories and the wrappers.
    fn lay_out(&self) {
        let templates = Path::new(REPO).join("packaging/templates");
        for dir in [
            "etc/cronq/templates",
            "var/lib/cronq",
            "run/cronq",
            "usr/share/cronq/templates",
            "usr/local/bin",
            "srv/a",
        ] {
            std::fs::create_dir_all(self.root.join(dir)).unwrap();
        }
        std::fs::create_dir_all(self.work.join("packaging/templates")).unwrap();
        std::fs::create_dir_all(self.ex.join("bin")).unwrap();
        for entry in std::fs::read_dir(&templates).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap();
            std::fs::copy(&path, self.work.join("packaging/templates").join(file)).unwrap();
            std::fs::copy(
                &path,
                self.root.join("usr/share/cronq/templates").join(file),
            )
            .unwrap();
        }
        std::fs::copy(
            Path::new(REPO).join("packaging/crons.toml"),
            self.root.join("etc/cronq/crons.toml"),
        )
        .unwrap();
        std::fs::write(self.root.join("srv/a/hello.txt"), "hello from /srv/a\n").unwrap();
        executable(&self.root.join("usr/local/bin/backup"), BACKUP);

        std::os::unix::fs::symlink(daemon::BIN, self.ex.join("bin/cronq")).unwrap();
        executable(&self.ex.join("bin/socat"), SOCAT_WRAPPER);
        executable(&self.ex.join("bin/sudo"), SUDO);
    }

    /// The daemon on the SQL examples' database, with the mail settings of
    /// the examples' own daemon (README's, exported in a block).
    fn start_app_daemon(&self, backend: &daemon::Backend) -> daemon::Daemon {
        let templates = self.work.join("packaging/templates").display().to_string();
        let port = self.smtp.as_ref().map(|s| s.port.to_string());
        let mut env = vec![("EMAIL_TEMPLATES_DIR", templates.as_str())];
        if let Some(port) = &port {
            env.extend([
                ("SMTP_HOST", "127.0.0.1"),
                ("SMTP_PORT", port.as_str()),
                ("SMTP_TLS", "none"),
                ("MAIL_FROM", "cronq <cronq@example.com>"),
            ]);
        }
        backend.start(&env)
    }

    fn spawn(&mut self, doc: &Doc) {
        std::fs::write(self.ex.join("prelude.sh"), PRELUDE).unwrap();
        let script = script(self.name, doc);
        std::fs::write(self.ex.join("script.sh"), &script).unwrap();
        let real_socat = which("socat").unwrap_or_else(|| "socat".into());
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.ex.join("bin").display()
                ),
            ),
            ("HOME".into(), self.work.display().to_string()),
            ("LOG_FORMAT".into(), "text".into()),
            ("LOG_LEVEL".into(), "info".into()),
            ("CRON_TZ".into(), "UTC".into()),
            ("CRONQ_SOCKET".into(), self.socket.display().to_string()),
            ("__EX".into(), self.ex.display().to_string()),
            ("__REAL_SOCAT".into(), real_socat),
        ];
        if doc.layout == Layout::Installed {
            for (var, dir) in [
                ("STATE_DIRECTORY", "var/lib/cronq"),
                ("RUNTIME_DIRECTORY", "run/cronq"),
                ("CONFIGURATION_DIRECTORY", "etc/cronq"),
            ] {
                env.push((var.into(), self.root.join(dir).display().to_string()));
            }
        }
        env.extend(doc.env.iter().cloned());
        if let Some((daemon::Backend::Postgres { url, .. }, _)) = &self.app {
            env.push(("DATABASE_URL".into(), url.clone()));
        }
        let child = Command::new("sh")
            .arg(self.ex.join("script.sh"))
            .current_dir(&self.work)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.ex.join("stdout")).unwrap())
            .stderr(std::fs::File::create(self.ex.join("stderr")).unwrap())
            .spawn()
            .expect("start sh");
        self.shell = Some(child);
    }

    /// Waits until every block has run (the script then waits for `done`).
    fn wait_for_epilogue(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.ex.join("epilogue").exists() {
                return;
            }
            let shell = self.shell.as_mut().expect("running");
            if let Some(status) = shell.try_wait().unwrap() {
                panic!(
                    "the examples of {} stopped ({status}) at the last example below\n{}",
                    self.name,
                    self.report()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the examples of {} did not finish in {DEADLINE:?}\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each answer a `socat` printed: `"ok":true`, or the shape the
    /// document shows for it.
    fn check_answers(&self, doc: &Doc) {
        let log = std::fs::read_to_string(self.ex.join("socat.log")).unwrap_or_default();
        let mut faults = Vec::new();
        for (n, block) in doc.blocks.iter().enumerate() {
            let n = n + 1;
            let at = format!("{}:{}", self.name, block.line);
            let recorded: Vec<Value> = log
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .filter(|(b, _)| b.parse() == Ok(n))
                .map(|(_, answer)| {
                    serde_json::from_str(answer)
                        .unwrap_or_else(|e| panic!("{at}: socat printed {answer:?}, not JSON: {e}"))
                })
                .collect();
            let Some(shown) = &block.answers else {
                for answer in recorded.iter().filter(|a| a["ok"] != true) {
                    faults.push(format!("{at}: refused: {answer}"));
                }
                continue;
            };
            let printed = std::fs::read_to_string(self.ex.join(format!("out.{n}"))).unwrap();
            let printed = examples::json_values(&printed)
                .unwrap_or_else(|e| panic!("{at}: the block printed {printed:?}: {e}"));
            if printed.len() != shown.len() {
                faults.push(format!(
                    "{at}: the document shows {} answers, the block printed {}: {}",
                    shown.len(),
                    printed.len(),
                    Value::Array(printed)
                ));
                continue;
            }
            for (i, (d, r)) in shown.iter().zip(&printed).enumerate() {
                if let Err(e) = examples::same_shape(d, r, &format!("answer {}", i + 1)) {
                    faults.push(format!("{at}: {e}\n  real answer: {r}"));
                }
            }
            // Answers the block did not print (a job id read with jq) must
            // still be successes.
            for answer in recorded.iter().filter(|a| a["ok"] != true) {
                if !printed.contains(answer) {
                    faults.push(format!("{at}: refused: {answer}"));
                }
            }
        }
        assert!(
            faults.is_empty(),
            "the examples of {}:\n{}\n{}",
            self.name,
            faults.join("\n"),
            self.report()
        );
    }

    /// A request to the examples' daemon.
    fn request(&self, request: Value) -> Value {
        daemon::Client::connect(&self.socket)
            .expect("connect to the examples' daemon")
            .request(request)
    }

    /// Waits until no job of these statuses (and this type) is left.
    fn wait_until_none(&self, statuses: &[&str], job_type: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // One listing of every job, not one per status: a job moving
            // from scheduled to pending between two listings would be missed.
            let mut query = json!({"cmd": "jobs", "limit": 1000});
            if let Some(t) = job_type {
                query["type"] = t.into();
            }
            let answer = self.request(query);
            let left: Vec<Value> = answer["jobs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|job| statuses.iter().any(|s| job["status"] == *s))
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: jobs still {statuses:?}: {left:?}\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_no_dead_jobs(&self) {
        let dead = self.request(json!({"cmd": "jobs", "status": "dead"}));
        assert_eq!(
            dead["jobs"],
            json!([]),
            "{}: jobs of the examples died\n{}",
            self.name,
            self.report()
        );
    }

    /// The messages delivered to `to` with this subject.
    fn mail_to(&self, to: &str, subject: &str) -> Vec<smtp::Received> {
        let server = self.smtp.as_ref().expect("an SMTP server");
        server
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == to) && m.header("Subject") == subject)
            .collect()
    }

    /// Lets the script stop its daemon, which must exit 0.
    fn finish(mut self) {
        std::fs::write(self.ex.join("done"), "").unwrap();
        let mut shell = self.shell.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = shell.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = shell.kill();
                panic!(
                    "{}: the daemon did not stop in 90 s\n{}",
                    self.name,
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "{}: the daemon did not stop cleanly ({status})\n{}",
            self.name,
            self.report()
        );
    }

    /// The script's output and the daemon's log, for a failure message.
    fn report(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.ex.join(f)).unwrap_or_default();
        let tail = |text: String, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let log = read("socat.log");
        let refused: Vec<&str> = log.lines().filter(|l| !l.contains("\"ok\":true")).collect();
        let mut out = String::new();
        let _ = write!(
            out,
            "--- answers not ok so far (example number, answer)\n{}\n\
             --- stderr of the examples (last 40 lines)\n{}\n--- daemon log (last 40 lines)\n{}\n",
            refused.join("\n"),
            tail(read("stderr"), 40),
            tail(read("daemon.log"), 40)
        );
        out
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            let _ = shell.kill();
            let _ = shell.wait();
        }
        // The daemons the script started, by their pids.
        let pids = std::fs::read_to_string(self.ex.join("daemon.pids")).unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill with a pid this test's script started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // To read what the examples printed (the answers docs/PROTOCOL.md
        // shows are copied from examples/out.N).
        if std::env::var_os("CRONQ_DOC_EXAMPLES_KEEP").is_some()
            && let Some(temp) = self.temp.take()
        {
            eprintln!("{}: kept {}", self.name, temp.keep().display());
        }
    }
}

/// Whether the examples connect to the application's database.
fn uses_app_database(text: &str) -> bool {
    text.match_indices("DATABASE_URL")
        .any(|(at, _)| !text[..at].ends_with("CRONQ_"))
}

/// The modules the ```python blocks import, as one `import` list; `None`
/// without such blocks.
fn python_modules(doc: &Doc) -> Option<String> {
    let blocks: Vec<&str> = doc
        .blocks
        .iter()
        .filter(|b| b.kind == Kind::Python)
        .map(|b| b.text.as_str())
        .collect();
    if blocks.is_empty() {
        return None;
    }
    let mut modules: Vec<String> = blocks
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| {
            let rest = line
                .strip_prefix("import ")
                .or_else(|| line.strip_prefix("from "))?;
            let module = rest.split([' ', ',', '.']).next()?;
            (!module.is_empty()).then(|| module.to_string())
        })
        .collect();
    modules.sort();
    modules.dedup();
    Some(if modules.is_empty() {
        "sys".to_string()
    } else {
        modules.join(", ")
    })
}

fn which(tool: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn readme_examples_run_as_written() {
    let Some(run) = Run::start("README.md") else {
        return;
    };
    run.wait_until_none(&["pending", "running", "scheduled"], None);
    run.assert_no_dead_jobs();
    // The request body of the replaced system and the CLI's email example.
    let welcome = run.mail_to("ada@example.com", "Welcome Ada!");
    assert_eq!(welcome.len(), 2, "{}", run.report());
    for message in &welcome {
        assert!(message.body("text/plain").contains("Welcome to Example!"));
    }
    let export = std::fs::read_to_string(run.work.join("cronq-data/data/exports/users.csv"))
        .expect("the data_processing example's export");
    assert!(export.contains("Grace"), "{export}");
    let copied = std::fs::read_to_string(run.root.join("srv/b/hello.txt"))
        .expect("the command example's rsync copy");
    assert_eq!(copied, "hello from /srv/a\n");
    // The SQL examples: what committed ran on PostgreSQL, what rolled back
    // never existed.
    let (_, app) = run.app.as_ref().expect("README enqueues from SQL");
    app.until(
        Duration::from_secs(60),
        "the SQL-enqueued jobs to run",
        |d| {
            let jobs = d.ok(json!({"cmd": "jobs", "limit": 1000}));
            jobs["jobs"].as_array()?.is_empty().then_some(())
        },
    );
    for (to, subject, sent) in [
        ("grace@example.com", "Welcome Grace!", 1),
        ("alan@example.com", "Welcome Alan!", 1),
        ("eve@example.com", "Welcome Eve!", 0),
    ] {
        assert_eq!(
            run.mail_to(to, subject).len(),
            sent,
            "{to}\n{}\n{}",
            run.report(),
            app.log()
        );
    }
    run.finish();
}

#[test]
fn protocol_examples_run_as_written() {
    let Some(run) = Run::start("docs/PROTOCOL.md") else {
        return;
    };
    // `trigger system_queue` sent the compatibility example's email.
    assert_eq!(
        run.mail_to("ada@example.com", "Welcome Ada!").len(),
        1,
        "{}",
        run.report()
    );
    run.finish();
}

#[test]
fn cronq_8_examples_run_as_written() {
    let Some(run) = Run::start("man/cronq.8") else {
        return;
    };
    run.wait_until_none(&["pending", "running"], None);
    // The export of the data_processing example waits 5 s: until it is
    // neither scheduled, nor pending or running once due (one listing).
    run.wait_until_none(
        &["pending", "running", "scheduled"],
        Some("data_processing"),
    );
    run.assert_no_dead_jobs();
    assert_eq!(
        run.mail_to("ann@example.com", "Welcome Ann!").len(),
        1,
        "{}",
        run.report()
    );
    let export = run.root.join("var/lib/cronq/data/exports/users.csv");
    assert!(export.exists(), "no {}\n{}", export.display(), run.report());
    run.finish();
}

#[test]
fn cronq_toml_5_examples_run_as_written() {
    let Some(run) = Run::start("man/cronq.toml.5") else {
        return;
    };
    run.finish();
}
