//! The real `cronq` binary on a temp directory, and a client for its real
//! socket. Each test gets its own directory, database and socket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_cronq");

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
