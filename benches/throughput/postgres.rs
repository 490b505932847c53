//! The PostgreSQL half of the throughput bench (see benches/throughput.rs
//! for what it reports): one server of its own, started by the bench
//! (`cronq::store::postgres::testing`) with durable commits (`fsync=on`,
//! `full_page_writes=on`, unlike the tests' server) and
//! `pg_stat_statements` preloaded, a fresh database per measure.
//!
//! - **End to end** with 1, 2 and 3 release daemons on one database: the
//!   SQLite load (100,000 `noop` jobs in batches of 1,000, then `status`
//!   polled every 10 ms until none is left), the batches sent to the
//!   daemons' sockets in turn. Around each run: `pg_stat_statements`
//!   (reset before, read after, this database's rows only) and
//!   `pg_current_wal_lsn()`, for statements, round trips and WAL bytes per
//!   job; after the one-daemon run, what vacuum found and took.
//! - **Cross-node start**: daemon A with one worker, held by a long
//!   `command` job, so that it claims nothing else (a busy daemon claims
//!   ahead only for jobs of a known short pace); daemon B idle, with a
//!   `watch` connection asking for `started` events. 1,000 single `noop`
//!   enqueues on A, one at a time, 3 ms apart after 20 warm-up jobs:
//!   request written to A's socket → B's `started` event read by the bench
//!   (an upper bound of the start: it includes the event's way to the
//!   watcher). A's `stats` afterwards must show it ran none of them.
//! - **Ceiling**: plain tokio-postgres on cronq's schema (migrated by
//!   opening the store): insert in statements of 1,000 (`unnest`, durable)
//!   on one connection, then claim 50 (`FOR UPDATE SKIP LOCKED` over the
//!   `queues_ready` range, one transaction) and delete the 50 fenced on
//!   `(id, attempts, reserved_by)` in one `unnest` statement (one
//!   transaction, `synchronous_commit = off` as cronq's outcomes), until
//!   none is left: on one connection as SQLite's ceiling does, and on four
//!   side by side, which is what the server can do for the daemons, whose
//!   claims and outcomes overlap on several connections.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cronq::clock::SystemClock;
use cronq::store::JobDefaults;
use cronq::store::postgres::testing::{PgServer, ServerOptions};
use cronq::store::postgres::{PgOptions, PgSettings, PgStore};
use serde_json::{Value, json};

use super::support::daemon::{Client, Daemon};
use super::support::{cpu_ticks, percentile};
use super::{BATCH, CEILING_CLAIM, LATENCY_JOBS, drive};

/// The bench's server: durable, as a deployment's, with statement
/// statistics (the tests' server runs `fsync=off`).
const SETTINGS: &[&str] = &[
    "fsync=on",
    "full_page_writes=on",
    "shared_preload_libraries=pg_stat_statements",
    "pg_stat_statements.track=all",
    "pg_stat_statements.max=2000",
];

pub struct Bench {
    server: PgServer,
}

/// One end-to-end run on PostgreSQL.
pub struct ClusterRun {
    pub daemons: usize,
    pub enqueue_rate: f64,
    pub end_to_end_rate: f64,
    pub per_job: PerJob,
    /// CPU time per job, in µs: the server's processes, and the daemons'.
    pub server_cpu_us: f64,
    pub daemons_cpu_us: f64,
}

/// What the database did per job, from `pg_stat_statements` and the WAL.
#[derive(Debug, Default, Clone)]
pub struct PerJob {
    /// Statements the clients sent (top level): each one a round trip.
    pub statements: f64,
    /// Statements run inside functions and triggers (`cronq_claim`, the
    /// count and notify triggers): no round trip of their own.
    pub nested: f64,
    pub wal_bytes: f64,
    /// The statements that took the server longest (top level or not):
    /// calls per job, total ms, and the statement.
    pub top: Vec<(f64, f64, String)>,
}

/// What vacuum met after a run.
pub struct Vacuum {
    pub dead_tuples: i64,
    pub autovacuums: i64,
    pub took: Duration,
    pub size_before: i64,
    pub size_after: i64,
}

impl Bench {
    /// Starts the server; `None` (saying so) without PostgreSQL.
    pub fn start() -> Option<Bench> {
        if !cronq::store::postgres::testing::available() {
            return None;
        }
        let server = PgServer::start(ServerOptions {
            settings: SETTINGS,
            ..ServerOptions::default()
        })
        .expect("start PostgreSQL");
        server
            .psql("CREATE EXTENSION pg_stat_statements")
            .expect("pg_stat_statements");
        Some(Bench { server })
    }

    fn fresh(&self) -> (String, String) {
        let db = self.server.create_database().expect("a database");
        let url = self.server.url(&db);
        (db, url)
    }

    fn sql(&self, sql: &str) -> String {
        self.server
            .psql(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// CPU time of the server's processes (the postmaster and its children,
    /// the backends included), in clock ticks.
    fn server_cpu(&self) -> u64 {
        let pid_file = self.server.dir().join("data/postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
        else {
            return 0;
        };
        let children: u64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| parent_of(*pid) == Some(postmaster))
            .map(cpu_ticks)
            .sum();
        cpu_ticks(postmaster) + children
    }

    fn wal_lsn(&self) -> String {
        self.sql("SELECT pg_current_wal_lsn()")
    }

    /// `jobs` noop jobs through `daemons` daemons on one fresh database;
    /// `bin` runs another build of cronq (`THROUGHPUT_BEFORE`).
    pub fn cluster(
        &self,
        jobs: usize,
        daemons: usize,
        bin: Option<&Path>,
    ) -> (ClusterRun, Option<Vacuum>) {
        let (db, url) = self.fresh();
        let env = [("CRONQ_DATABASE_URL", url.as_str())];
        let nodes: Vec<Node> = (0..daemons).map(|_| Node::start(bin, &env)).collect();
        std::thread::sleep(Duration::from_millis(500));
        let mut clients: Vec<Client> = nodes.iter().map(|d| d.daemon.client()).collect();
        self.sql("SELECT pg_stat_statements_reset()");
        let lsn0 = self.wal_lsn();
        let pids: Vec<u32> = nodes.iter().map(|d| d.daemon.pid() as u32).collect();
        let daemons_cpu = || pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>();
        let (server0, daemons0) = (self.server_cpu(), daemons_cpu());
        let (enqueued, done) = drive(&mut clients, jobs, || {});
        let (server1, daemons1) = (self.server_cpu(), daemons_cpu());
        let lsn1 = self.wal_lsn();
        let per_job = self.per_job(&db, jobs, &lsn0, &lsn1);
        println!(
            "postgres, {daemons} daemon(s): enqueued {jobs} in {:.2} s, all done in {:.2} s",
            enqueued.as_secs_f64(),
            done.as_secs_f64()
        );
        let vacuum = (daemons == 1).then(|| self.vacuum(&db));
        drop(clients);
        drop(nodes);
        let us_per_job = |ticks: u64| ticks as f64 / clock_ticks() * 1e6 / jobs as f64;
        let run = ClusterRun {
            daemons,
            enqueue_rate: jobs as f64 / enqueued.as_secs_f64(),
            end_to_end_rate: jobs as f64 / done.as_secs_f64(),
            per_job,
            server_cpu_us: us_per_job(server1.saturating_sub(server0)),
            daemons_cpu_us: us_per_job(daemons1.saturating_sub(daemons0)),
        };
        (run, vacuum)
    }

    fn per_job(&self, db: &str, jobs: usize, lsn0: &str, lsn1: &str) -> PerJob {
        let of_db = format!("dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')");
        let sum = |filter: &str| -> f64 {
            self.sql(&format!(
                "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements WHERE {of_db} AND {filter}"
            ))
            .parse()
            .expect("a count")
        };
        let statements = sum("toplevel");
        let nested = sum("NOT toplevel");
        let wal: f64 = self
            .sql(&format!("SELECT pg_wal_lsn_diff('{lsn1}', '{lsn0}')"))
            .parse()
            .expect("a WAL difference");
        let top = self
            .sql(&format!(
                "SELECT calls, round(total_exec_time), CASE WHEN toplevel THEN '' ELSE '(nested) ' END
                        || regexp_replace(left(query, 300), '\\s+', ' ', 'g')
                   FROM pg_stat_statements WHERE {of_db}
                  ORDER BY total_exec_time DESC LIMIT 14"
            ))
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, '|');
                let calls = fields.next()?.parse::<f64>().ok()?;
                let total = fields.next()?.parse::<f64>().ok()?;
                Some((calls / jobs as f64, total, fields.next()?.to_string()))
            })
            .collect();
        PerJob {
            statements: statements / jobs as f64,
            nested: nested / jobs as f64,
            wal_bytes: wal / jobs as f64,
            top,
        }
    }

    fn vacuum(&self, db: &str) -> Vacuum {
        let stat = |column: &str| -> i64 {
            self.server
                .psql_in(
                    db,
                    &format!("SELECT {column} FROM pg_stat_user_tables WHERE relname = 'queues'"),
                )
                .expect("pg_stat_user_tables")
                .parse()
                .unwrap_or(0)
        };
        let size = || -> i64 {
            self.server
                .psql_in(db, "SELECT pg_total_relation_size('queues')")
                .expect("a size")
                .parse()
                .unwrap_or(0)
        };
        let dead_tuples = stat("n_dead_tup");
        let autovacuums = stat("autovacuum_count");
        let size_before = size();
        let started = Instant::now();
        self.server
            .psql_in(db, "VACUUM queues, queue_counts, cron_runs, instances")
            .expect("vacuum");
        let took = started.elapsed();
        Vacuum {
            dead_tuples,
            autovacuums,
            took,
            size_before,
            size_after: size(),
        }
    }

    /// p50/p99 of (enqueue answered by A, A's enqueue → B's `started`), and
    /// how many of the jobs A ran itself (none, if the set-up holds).
    pub fn cross_node(
        &self,
        bin: Option<&Path>,
    ) -> ((Duration, Duration), (Duration, Duration), u64) {
        let (_db, url) = self.fresh();
        let node_a = Node::start(
            bin,
            &[
                ("CRONQ_DATABASE_URL", url.as_str()),
                ("JOB_MAX_WORKERS", "1"),
                ("JOB_COMMAND_ALLOW", "/bin/sleep"),
            ],
        );
        let a = &node_a.daemon;
        a.ok(json!({"cmd": "enqueue", "name": "hold", "payload": {"type": "command", "data": {"argv": ["/bin/sleep", "3600"]}, "options": {"timeout": 7200}}}));
        a.until(Duration::from_secs(20), "A's one worker to be busy", |d| {
            (d.ok(json!({"cmd": "status"}))["workers"]["busy"] == 1).then_some(())
        });
        let node_b = Node::start(bin, &[("CRONQ_DATABASE_URL", url.as_str())]);
        let b = &node_b.daemon;
        let mut watch = b.client();
        let answer = watch.request(json!({"cmd": "watch", "events": ["started"]}));
        assert_eq!(answer["watching"], true, "{answer}");
        std::thread::sleep(Duration::from_millis(500));
        let mut client = a.client();
        let (mut acks, mut starts) = (Vec::new(), Vec::new());
        for i in 0..LATENCY_JOBS + 20 {
            std::thread::sleep(Duration::from_millis(3));
            let request = json!({"cmd": "enqueue", "name": format!("x{i}"), "payload": {"type": "noop", "data": {}}});
            let line = format!("{request}\n");
            let sent = Instant::now();
            client.send_raw(line.as_bytes());
            let answer = client.read_line().expect("an answer");
            let acked = sent.elapsed();
            assert_eq!(answer["ok"], true, "{answer}");
            let id = answer["job"]["id"].clone();
            let began = loop {
                let event = watch.read_line().expect("a started event on B");
                if event["event"] == "started" && event["job"]["id"] == id {
                    break sent.elapsed();
                }
            };
            if i >= 20 {
                acks.push(acked);
                starts.push(began);
            }
        }
        let stats = a.ok(json!({"cmd": "stats"}));
        let ran_on_a = stats["types"]["noop"]["succeeded"].as_u64().unwrap_or(0);
        (
            (percentile(&mut acks, 50.0), percentile(&mut acks, 99.0)),
            (percentile(&mut starts, 50.0), percentile(&mut starts, 99.0)),
            ran_on_a,
        )
    }

    /// The insert, claim-50, delete cycle with plain tokio-postgres: the
    /// inserts on one connection, then `connections` connections claiming
    /// and deleting side by side until none is left. Jobs/s for `jobs`.
    pub fn ceiling(&self, jobs: usize, connections: usize) -> f64 {
        let (_db, url) = self.fresh();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            // The store applies cronq's migrations; then it steps aside.
            let settings = PgSettings::parse(&url, &|_| None).expect("settings");
            let options = PgOptions::new(JobDefaults::default(), Arc::new(SystemClock));
            let store = PgStore::open(settings, options).await.expect("open");
            store.close().await;
            drop(store);
            let mut clients = Vec::new();
            for _ in 0..connections.max(1) {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                clients.push(client);
            }
            let started = Instant::now();
            ceiling_inserts(&clients[0], jobs).await;
            let drains: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(n, client)| tokio::spawn(ceiling_drain(client, format!("bare{n}"))))
                .collect();
            let mut done = 0;
            for drain in drains {
                done += drain.await.expect("a drain");
            }
            assert_eq!(done, jobs);
            let took = started.elapsed();
            println!(
                "postgres ceiling, {connections} connection(s): {jobs} jobs inserted, claimed and deleted in {:.2} s",
                took.as_secs_f64()
            );
            jobs as f64 / took.as_secs_f64()
        })
    }
}

async fn ceiling_inserts(client: &tokio_postgres::Client, jobs: usize) {
    let insert = client
        .prepare(
            "INSERT INTO queues (id, name, payload, max_attempts, timeout, run_at, created, updated)
             SELECT id, name, payload, 4, 30, $4, $4, $4
               FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS n(id, name, payload)",
        )
        .await
        .expect("prepare the insert");
    let mut sent = 0;
    while sent < jobs {
        let upto = (sent + BATCH).min(jobs);
        let ids: Vec<String> = (sent..upto).map(|i| format!("{i:015}")).collect();
        let names: Vec<String> = (sent..upto).map(|i| format!("b{i}")).collect();
        let payloads: Vec<Value> = (sent..upto)
            .map(|i| json!({"type": "noop", "data": {"i": i}, "options": {"retry_count": 3, "timeout": 30}}))
            .collect();
        client
            .execute(&insert, &[&ids, &names, &payloads, &SystemTime::now()])
            .await
            .expect("insert");
        sent = upto;
    }
}

/// Claims 50 and deletes them, fenced on `holder`, until none is ready.
async fn ceiling_drain(mut client: tokio_postgres::Client, holder: String) -> usize {
    let claim = client
        .prepare(
            "WITH picked AS (
                 SELECT id FROM queues
                  WHERE status = 'pending' AND priority = 0 AND type = 'noop' AND run_at <= $1
                  ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE queues q SET status = 'running', attempts = q.attempts + 1,
                    reserved_at = $1, reserved_by = $3, updated = $1
               FROM picked WHERE q.id = picked.id
             RETURNING q.id, q.attempts",
        )
        .await
        .expect("prepare the claim");
    let delete = client
        .prepare(
            "DELETE FROM queues q
              USING unnest($1::text[], $2::int4[]) AS l(id, attempts)
              WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = $3
                AND q.status = 'running'",
        )
        .await
        .expect("prepare the delete");
    let mut done = 0;
    loop {
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .expect("set");
        let rows = tx
            .query(
                &claim,
                &[&SystemTime::now(), &(CEILING_CLAIM as i64), &holder],
            )
            .await
            .expect("claim");
        tx.commit().await.expect("commit");
        if rows.is_empty() {
            return done;
        }
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let attempts: Vec<i32> = rows.iter().map(|r| r.get(1)).collect();
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .expect("set");
        let deleted = tx
            .execute(&delete, &[&ids, &attempts, &holder])
            .await
            .expect("delete");
        assert_eq!(deleted as usize, ids.len());
        tx.commit().await.expect("commit");
        done += ids.len();
    }
}

/// A daemon of this build, or of another (`bin`), on a temp dir of its own.
struct Node {
    daemon: Daemon,
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    fn start(bin: Option<&Path>, env: &[(&str, &str)]) -> Node {
        let Some(bin) = bin else {
            return Node {
                daemon: Daemon::start(env),
                _dir: None,
            };
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log file");
        let child = Command::new(bin)
            .arg("daemon")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LOG_FORMAT", "text")
            .env("LOG_LEVEL", "info")
            .env("CRON_TZ", "UTC")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let daemon = Daemon::adopt(dir.path(), child);
        daemon.until(Duration::from_secs(20), "the daemon to answer", |d| {
            let mut c = d.try_client().ok()?;
            (c.request(json!({"cmd": "ping"}))["ok"] == true).then_some(())
        });
        Node {
            daemon,
            _dir: Some(dir),
        }
    }
}

/// The parent of `pid`, from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf with a valid name.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}
