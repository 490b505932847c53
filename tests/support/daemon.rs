//! The real `cronq` binary on a temp directory, and a client for its real
//! socket. Each test gets its own directory, database and socket.
//!
//! A test that applies to both backends takes a [`Backend`] and starts its
//! daemons through it; `on_both_backends!` (with `#[macro_use]` on this
//! module) makes a `sqlite::NAME` and a `postgres::NAME` test of each. The
//! PostgreSQL one gets a fresh database on a server the test binary starts
//! (`cronq::store::postgres::testing`); without PostgreSQL it skips
//! loudly, and fails under CRONQ_TEST_REQUIRE_TOOLS.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_cronq");

/// Which database a test's daemons run on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The SQLite file in the daemon's directory (`cronq-data/cronq.db`).
    Sqlite,
    /// A fresh database of its own on the test binary's PostgreSQL server.
    Postgres { url: String, db: String },
}

impl Backend {
    /// A fresh PostgreSQL database; `None`, after saying so past the test
    /// harness's capture, when PostgreSQL is not installed (under
    /// CRONQ_TEST_REQUIRE_TOOLS that panics instead).
    pub fn postgres() -> Option<Backend> {
        let Some(server) = cronq::store::postgres::testing::shared() else {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"\n*** SKIPPED: PostgreSQL (initdb) is not installed; .ci/run installs it ***\n\n",
            );
            return None;
        };
        let db = server.create_database().expect("create a test database");
        Some(Backend::Postgres {
            url: server.url(&db),
            db,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// `env` plus what selects this backend.
    pub fn env<'a>(&'a self, env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = env.to_vec();
        if let Backend::Postgres { url, .. } = self {
            all.push(("CRONQ_DATABASE_URL", url.as_str()));
        }
        all
    }

    /// [`Daemon::start`] on this backend.
    pub fn start(&self, env: &[(&str, &str)]) -> Daemon {
        Daemon::start(&self.env(env))
    }

    /// [`Daemon::on_dir`] on this backend.
    pub fn on_dir(&self, dir: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::on_dir(dir, &self.env(env))
    }

    /// Runs SQL in this backend's PostgreSQL database as the superuser;
    /// the rows as psql prints them unaligned.
    pub fn psql(&self, sql: &str) -> String {
        match self {
            Backend::Postgres { db, .. } => cronq::store::postgres::testing::shared()
                .expect("the server is running")
                .psql_in(db, sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Backend::Sqlite => panic!("psql on a SQLite backend"),
        }
    }
}

/// `on_both_backends! { test_a, test_b }`: for each `fn test_a(b: Backend)`
/// of the test file, a `sqlite::test_a` and a `postgres::test_a` test.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::daemon::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    let Some(backend) = crate::daemon::Backend::postgres() else {
                        return;
                    };
                    super::$test(backend)
                }
            )*
        }
    };
}

pub struct Daemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub child: Option<Child>,
    env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts a daemon on a fresh temp dir with `env` and waits until its
    /// socket answers.
    pub fn start(env: &[(&str, &str)]) -> Daemon {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut d = Daemon::on_dir(temp.path(), env);
        d._temp = Some(temp);
        d
    }

    /// Starts a daemon whose state lives in `dir` (kept after it stops).
    pub fn on_dir(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        // CRONQ_SOCKET moves the socket; the start-up probe must follow it.
        let socket = env
            .iter()
            .find(|(k, _)| *k == "CRONQ_SOCKET")
            .map_or_else(|| dir.join("cronq-data/admin.sock"), |(_, v)| v.into());
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            socket,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _temp: None,
        };
        d.spawn();
        d
    }

    /// Wraps a daemon started elsewhere (a benchmark that times its start)
    /// in `dir`, with its socket at the default place.
    pub fn adopt(dir: &Path, child: Child) -> Daemon {
        Daemon {
            dir: dir.to_path_buf(),
            socket: dir.join("cronq-data/admin.sock"),
            child: Some(child),
            env: Vec::new(),
            _temp: None,
        }
    }

    pub fn spawn(&mut self) {
        let child = Command::new(BIN)
            .arg("daemon")
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LOG_FORMAT", "text")
            .env("LOG_LEVEL", "info")
            .env("CRON_TZ", "UTC")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("daemon.log")).expect("log file"))
            .spawn()
            .expect("start cronq");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = self.try_client()
                && c.request(json!({"cmd": "ping"}))["ok"] == true
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("cronq exited with {status} at start-up:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "cronq did not answer in 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn try_client(&self) -> std::io::Result<Client> {
        Client::connect(&self.socket)
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect to the admin socket")
    }

    /// One request on a fresh connection.
    pub fn request(&self, request: Value) -> Value {
        self.client().request(request)
    }

    /// Asserts success and returns the answer.
    pub fn ok(&self, request: Value) -> Value {
        let answer = self.request(request.clone());
        assert_eq!(answer["ok"], true, "{request} -> {answer}\n{}", self.log());
        answer
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with a valid pid and signal number.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(60))
    }

    /// SIGKILL: the crash.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10));
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cronq did not exit within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `check` until it returns `Some`, for up to `limit`.
    pub fn until<T>(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Daemon) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The job while it is in the queue, or `None` once it left it
    /// (succeeded, cancelled, purged); [`Daemon::finished`] reads the
    /// history's record then.
    pub fn job(&self, id: &str) -> Option<Value> {
        self.job_answer(id).filter(|job| !job["payload"].is_null())
    }

    /// The history's record of a job that left the queue, if it has one.
    pub fn finished(&self, id: &str) -> Option<Value> {
        self.job_answer(id).filter(|job| job["payload"].is_null())
    }

    /// What `job` answers: the job from the queue (a live row has its
    /// payload) or from the history (whose records keep none).
    fn job_answer(&self, id: &str) -> Option<Value> {
        let answer = self.request(json!({"cmd": "job", "id": id}));
        if answer["ok"] == true {
            Some(answer["job"].clone())
        } else {
            assert_eq!(answer["error"]["code"], "not_found", "{answer}");
            None
        }
    }

    pub fn enqueue(&self, job_type: &str, data: Value) -> String {
        let answer = self.ok(json!({"cmd": "enqueue", "name": job_type, "payload": {"type": job_type, "data": data}}));
        answer["job"]["id"].as_str().expect("job id").to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A connection to the admin socket.
pub struct Client {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    pub fn read_line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("answer {line:?} is not JSON: {e}")),
            ),
            Err(e) => panic!("reading an answer: {e}"),
        }
    }

    pub fn request(&mut self, request: Value) -> Value {
        self.send_raw(format!("{request}\n").as_bytes());
        self.read_line().expect("an answer")
    }

    /// Whether the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}
