//! A throwaway PostgreSQL server for tests: `initdb` on a temp dir, the
//! server on its own 127.0.0.1 port, run as the `postgres` user when the
//! tests run as root (initdb refuses root). Used by the store's unit tests
//! and by `tests/`; not part of cronq's interface.
//!
//! A small shell wrapper owns the server and reads commands (`stop`,
//! `start`) on its stdin; when the test process exits, stdin closes and
//! the wrapper stops the server and removes the directory, so a server
//! shared by a whole test binary ([`shared`]) cleans up after itself.
//!
//! Missing binaries skip loudly (the `tests/support/tools.rs` rule): under
//! `.ci/run` (CRONQ_TEST_REQUIRE_TOOLS=1) they fail instead.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The login role the tests connect as, over TCP with a password.
pub const USER: &str = "cronq";
pub const PASSWORD: &str = "cronq-test-pw";

/// What a server is started with.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// TLS on, with a test CA (see [`PgServer::tls`]).
    pub tls: bool,
    /// More `-c NAME=VALUE` settings, after the harness's own (which they
    /// override): a benchmark's `fsync=on`, `shared_preload_libraries`.
    pub settings: &'static [&'static str],
}

/// The files of a TLS-enabled server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate (for `DNS:localhost`).
    pub ca: PathBuf,
    /// A CA that signed nothing the server shows.
    pub other_ca: PathBuf,
}

pub struct PgServer {
    dir: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
    control: Mutex<Control>,
}

struct Control {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The directory of `initdb`, `postgres`: on PATH, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Debian links initdb onto PATH; its real directory has the rest.
            if let Ok(real) = std::fs::canonicalize(dir.join("initdb"))
                && let Some(parent) = real.parent().filter(|p| complete(p))
            {
                return Some(parent.to_path_buf());
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| complete(bin))
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

/// Whether PostgreSQL can be started here; says loudly why not, and fails
/// under CRONQ_TEST_REQUIRE_TOOLS.
pub fn available() -> bool {
    if bin_dir().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CRONQ_TEST_REQUIRE_TOOLS").is_none(),
        "PostgreSQL (initdb) is required (CRONQ_TEST_REQUIRE_TOOLS is set) but not installed"
    );
    eprintln!("SKIPPED: PostgreSQL (initdb) is not installed; .ci/run installs it");
    false
}

/// The server shared by this test binary, started on first use; `None`
/// (after saying so) when PostgreSQL is not installed.
pub fn shared() -> Option<&'static PgServer> {
    static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if !available() {
                return None;
            }
            Some(PgServer::start(ServerOptions::default()).expect("start PostgreSQL"))
        })
        .as_ref()
}

/// The uid and gid of the `postgres` user, when running as root.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: getpwnam reads a NUL-terminated name; the result is copied
    // out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("running as root, but there is no postgres user to run the server as".into());
    }
    // SAFETY: pw is non-null and points to a passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Runs `cmd` as `user` (uid, gid) when given.
fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

fn chown(path: &Path, user: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

const WRAPPER: &str = r#"
D="$1"; BIN="$2"; PORT="$3"; EXTRA="$4"
start() {
    "$BIN/postgres" -D "$D/data" -p "$PORT" -k "$D" -c listen_addresses=127.0.0.1 \
        -c fsync=off -c full_page_writes=off -c max_connections=400 $EXTRA >>"$D/log" 2>&1 &
    pg=$!
}
start
while read -r cmd; do
    case "$cmd" in
        stop) kill -INT "$pg" 2>/dev/null; wait "$pg" 2>/dev/null ;;
        start) start ;;
    esac
    echo ok
done
kill -INT "$pg" 2>/dev/null; wait "$pg" 2>/dev/null
rm -rf "$D"
"#;

impl PgServer {
    /// initdb on a fresh temp dir and start the server; waits until it
    /// accepts connections and the test role exists.
    pub fn start(options: ServerOptions) -> Result<PgServer, String> {
        let bin = bin_dir().ok_or("PostgreSQL (initdb) is not installed")?;
        let user = server_user()?;
        let dir = std::env::temp_dir().join(format!(
            "cronq-pg-{}-{}",
            std::process::id(),
            crate::store::job::new_id()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        chown(&dir, user)?;
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).map_err(|e| e.to_string())?;
        chown(&pwfile, user)?;
        run(
            as_user(
                Command::new(bin.join("initdb"))
                    .arg("-D")
                    .arg(dir.join("data"))
                    .args(["-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
                    .args(["--auth-local=trust", "--auth-host=scram-sha-256"]),
                user,
            ),
            "initdb",
        )?;
        let _ = std::fs::remove_file(&pwfile);
        let mut extra = String::new();
        let tls = if options.tls {
            let files = make_certs(&dir, user)?;
            extra = format!(
                "-c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
                d = dir.display()
            );
            Some(files)
        } else {
            None
        };
        for setting in options.settings {
            if setting.contains(char::is_whitespace) {
                return Err(format!("a server setting without blanks, got {setting:?}"));
            }
            extra.push_str(&format!(" -c {setting}"));
        }
        let port = free_port()?;
        let mut child = as_user(
            Command::new("sh")
                .arg("-c")
                .arg(WRAPPER)
                .arg("cronq-pg")
                .arg(&dir)
                .arg(&bin)
                .arg(port.to_string())
                .arg(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            user,
        )
        .spawn()
        .map_err(|e| format!("start the server: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let server = PgServer {
            dir,
            port,
            tls,
            control: Mutex::new(Control {
                child,
                stdin,
                stdout,
            }),
        };
        server.wait_ready(1)?;
        server.psql(&format!(
            "CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'"
        ))?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// `postgres://cronq:PASSWORD@127.0.0.1:PORT/DB?sslmode=disable`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A new empty database owned by the test role; its name.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("t_{}", crate::store::job::new_id());
        self.psql(&format!("CREATE DATABASE {name} OWNER {USER}"))?;
        Ok(name)
    }

    /// Runs SQL as the superuser over the Unix socket, in `postgres`.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL as the superuser over the Unix socket, in `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let bin = bin_dir().ok_or("PostgreSQL is not installed")?;
        let out = as_user(
            Command::new(bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-t",
                    "-A",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                ])
                .arg("-h")
                .arg(&self.dir)
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-d")
                .arg(db)
                .arg("-c")
                .arg(sql),
            server_user()?,
        )
        .output()
        .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops the server (fast shutdown) and waits until it is down.
    pub fn stop(&self) -> Result<(), String> {
        self.command("stop")
    }

    /// Starts it again after [`PgServer::stop`] and waits until it is up.
    pub fn start_again(&self) -> Result<(), String> {
        let before = self.ready_count();
        self.command("start")?;
        self.wait_ready(before + 1)
    }

    fn command(&self, cmd: &str) -> Result<(), String> {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = control.stdin.as_mut().ok_or("the server is gone")?;
        writeln!(stdin, "{cmd}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        control
            .stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != "ok" {
            return Err(format!("the server wrapper answered {line:?} to {cmd}"));
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn ready_count(&self) -> usize {
        self.log()
            .matches("database system is ready to accept connections")
            .count()
    }

    fn wait_ready(&self, count: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready_count() < count {
            if Instant::now() > deadline {
                return Err(format!("PostgreSQL did not start:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        // Closing stdin makes the wrapper stop the server and clean up.
        drop(control.stdin.take());
        let _ = control.child.wait();
    }
}

/// A CA, a server certificate for DNS:localhost signed by it, and an
/// unrelated CA, made with the openssl command.
fn make_certs(dir: &Path, user: Option<(u32, u32)>) -> Result<TlsFiles, String> {
    let openssl = |args: &[&str]| {
        run(
            Command::new("openssl").args(args).current_dir(dir),
            "openssl",
        )
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let key = format!("{ca}.key");
        let crt = format!("{ca}.crt");
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subj = format!("/CN=cronq test {ca}");
        args.push(&subj);
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "server.ext",
    ])?;
    for f in ["server.key", "server.crt"] {
        let path = dir.join(f);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        chown(&path, user)?;
    }
    Ok(TlsFiles {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
    })
}
