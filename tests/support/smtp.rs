//! A real SMTP server on loopback for the email tests: `smtp_server.py`
//! (aiosmtpd) in its own temp dir, stopped when the value is dropped.
//!
//! Python is found through `CRONQ_TEST_PYTHON` (a venv with aiosmtpd; the CI
//! script sets it), else `python3`. With neither able to import aiosmtpd the
//! tests that need the server say so loudly and skip; with
//! `CRONQ_TEST_PYTHON` set but broken they fail, so CI cannot skip silently.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

/// One message as the server stored it.
#[derive(Debug, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub parts: Vec<Part>,
    pub auth_login: Option<String>,
    pub raw: String,
}

#[derive(Debug, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub body: String,
}

impl Received {
    /// Every value of header `name`, compared without case.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics when absent or repeated.
    pub fn header(&self, name: &str) -> &str {
        match self.header_all(name).as_slice() {
            [one] => one,
            other => panic!("header {name}: expected one value, got {other:?}"),
        }
    }

    /// The body of the part of type `content_type`, line ends as `\n`.
    pub fn body(&self, content_type: &str) -> String {
        let part = self
            .parts
            .iter()
            .find(|p| p.content_type == content_type)
            .unwrap_or_else(|| panic!("no {content_type} part in {:?}", self.parts));
        part.body.replace("\r\n", "\n")
    }
}

pub struct SmtpServer {
    child: Child,
    /// Held open: the server exits when it closes.
    _stdin: ChildStdin,
    pub port: u16,
    dir: tempfile::TempDir,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");

/// A Python that can import aiosmtpd, found once per test binary.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let explicit = std::env::var_os("CRONQ_TEST_PYTHON").filter(|p| !p.is_empty());
            let candidate = explicit.clone().unwrap_or_else(|| "python3".into());
            let works = Command::new(&candidate)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            match (works, explicit) {
                (true, _) => Some(PathBuf::from(candidate)),
                (false, Some(p)) => panic!(
                    "CRONQ_TEST_PYTHON={} cannot import aiosmtpd; \
                     create it with: python3 -m venv V && V/bin/pip install aiosmtpd",
                    PathBuf::from(p).display()
                ),
                (false, None) => None,
            }
        })
        .as_deref()
}

/// Says loudly, past the test harness's output capture, that `test` did not
/// run.
pub fn skip(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: no Python with aiosmtpd. Set CRONQ_TEST_PYTHON to a \
         venv's python (python3 -m venv V && V/bin/pip install aiosmtpd). ***\n"
    );
}

impl SmtpServer {
    /// Starts a server with the script's `options` (e.g. `--rcpt-reply`,
    /// `"550 5.1.1 no such user"`); `None` when no usable Python exists (the
    /// caller skips).
    pub fn start(options: &[&str]) -> Option<SmtpServer> {
        let python = python()?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .arg("--dir")
            .arg(dir.path())
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the SMTP server script");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's READY line");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.path().join("server.log"));
                panic!("the SMTP server did not start: {line:?}, log: {log:?}")
            });
        Some(SmtpServer {
            child,
            _stdin: stdin,
            port,
            dir,
        })
    }

    /// Messages stored so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the server dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read a stored message");
                serde_json::from_str(&text).expect("a stored message is JSON")
            })
            .collect()
    }

    /// Connections the server has accepted.
    pub fn connections(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("connections"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
