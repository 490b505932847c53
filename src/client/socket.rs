//! Finding the daemon's admin socket and exchanging one request line for one
//! answer line over it.
//!
//! A blocking `std` `UnixStream` is enough for a CLI that sends one request
//! and waits for one answer; tokio would only add start-up time. The socket
//! path is resolved the way the daemon resolves it (`Config::from_vars`, fed
//! only the variables that decide the socket, so an unrelated bad setting in
//! the caller's environment cannot break the CLI), plus one step the daemon
//! does not need: an operator's shell has no `$RUNTIME_DIRECTORY`, so the
//! systemd unit's `/run/cronq/admin.sock` is tried before `./cronq-data/`.
//! A user outside the socket's group cannot even see whether that socket
//! exists (its folder is 0750): that is said, with the group to join,
//! rather than falling back to a `./cronq-data/` where no daemon runs.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::ClientError;
use super::request::{Cmd, Request};

/// Where the packaged systemd unit puts the socket (`RuntimeDirectory=cronq`).
pub const SYSTEM_SOCKET: &str = "/run/cronq/admin.sock";

/// Largest answer the CLI reads: a page of 1,000 jobs with big payloads fits
/// easily, a runaway peer does not fill memory.
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// The socket to use: `--socket`/`CRONQ_SOCKET` if given, else as documented
/// in ARCHITECTURE.md "Configuration".
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, ClientError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let runtime_dir = std::env::var("RUNTIME_DIRECTORY").ok();
    resolve_from(runtime_dir.as_deref(), probe(Path::new(SYSTEM_SOCKET)))
}

/// What this user can tell about a socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Present,
    Absent,
    /// Its folder may not be searched: it may well exist.
    Denied,
}

fn probe(path: &Path) -> Probe {
    match std::fs::metadata(path) {
        Ok(_) => Probe::Present,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Probe::Denied,
        Err(_) => Probe::Absent,
    }
}

fn resolve_from(runtime_dir: Option<&str>, system_socket: Probe) -> Result<PathBuf, ClientError> {
    let runtime_dir = runtime_dir.filter(|d| !d.trim().is_empty());
    if runtime_dir.is_none() {
        match system_socket {
            Probe::Present => return Ok(PathBuf::from(SYSTEM_SOCKET)),
            Probe::Denied => {
                let path = PathBuf::from(SYSTEM_SOCKET);
                return Err(ClientError::Denied {
                    access: SocketAccess::of(&path),
                    path,
                });
            }
            Probe::Absent => {}
        }
    }
    let mut vars = HashMap::new();
    if let Some(dir) = runtime_dir {
        vars.insert("RUNTIME_DIRECTORY".to_string(), dir.to_string());
    }
    crate::config::Config::from_vars(&vars)
        .map(|c| c.socket_path)
        .map_err(|e| ClientError::Usage(e.to_string()))
}

/// Which group opens a socket this user may not open: the socket's own
/// group when it can be read, else that of the folder it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// The socket, or its folder, whose group this is.
    pub owner: PathBuf,
    pub group: Option<String>,
}

impl SocketAccess {
    pub fn of(socket: &Path) -> SocketAccess {
        let folder = socket
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (owner, gid) = match std::fs::metadata(socket) {
            Ok(meta) => (socket, Some(meta.gid())),
            Err(_) => (folder, std::fs::metadata(folder).ok().map(|m| m.gid())),
        };
        SocketAccess {
            owner: owner.to_path_buf(),
            group: gid.and_then(crate::admin::group_name),
        }
    }

    /// What to do about it, in one sentence.
    pub fn hint(&self) -> String {
        let owner = self.owner.display();
        match &self.group {
            Some(group) => format!(
                "members of group `{group}` (the group of {owner}) may use it: \
                 `sudo usermod -aG {group} $USER`, then log in again; or run as root or as the daemon's user"
            ),
            None => {
                format!("join the group that owns {owner}, or run as root or as the daemon's user")
            }
        }
    }
}

/// The daemon's answer: the line as received (for `--json`) and parsed.
#[derive(Debug, Clone)]
pub struct Answer {
    pub line: String,
    pub value: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.value.get("ok").and_then(Value::as_bool) == Some(true)
    }

    /// `(code, message)` of an `ok: false` answer.
    pub fn error(&self) -> (String, String) {
        let error = self.value.get("error");
        let text = |key| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let code = text("code");
        let message = text("message");
        (
            if code.is_empty() {
                "internal".into()
            } else {
                code
            },
            if message.is_empty() {
                "the daemon refused the request without saying why".into()
            } else {
                message
            },
        )
    }
}

/// Sends `command` to the daemon at `path` and reads its answer.
/// `timeout`: how long to wait for the answer; `None` waits forever.
pub fn request(
    path: &Path,
    command: Cmd,
    timeout: Option<Duration>,
) -> Result<Answer, ClientError> {
    let unreachable = |err: io::Error| ClientError::Unreachable {
        path: path.to_path_buf(),
        err,
    };
    let stream = UnixStream::connect(path).map_err(|err| match err.kind() {
        io::ErrorKind::PermissionDenied => ClientError::Denied {
            path: path.to_path_buf(),
            access: SocketAccess::of(path),
        },
        _ => unreachable(err),
    })?;
    stream.set_read_timeout(timeout).map_err(unreachable)?;
    stream.set_write_timeout(timeout).map_err(unreachable)?;

    // One id per process is enough: one request per connection. It is the
    // pid so that a daemon's debug log line can be matched to the caller.
    let name = command.name();
    let request = Request::new(u64::from(std::process::id()), command);
    let mut line = serde_json::to_string(&request)
        .map_err(|e| ClientError::Protocol(format!("cannot encode the {name} request: {e}")))?;
    line.push('\n');
    exchange(
        &stream,
        line.as_bytes(),
        path,
        timeout,
        request.expected_id(),
    )
}

fn exchange(
    mut stream: &UnixStream,
    line: &[u8],
    path: &Path,
    timeout: Option<Duration>,
    expected_id: Option<Value>,
) -> Result<Answer, ClientError> {
    let io_error = |err: io::Error| match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.to_path_buf(),
            secs: timeout.map_or(0, |t| t.as_secs()),
        },
        _ => ClientError::Unreachable {
            path: path.to_path_buf(),
            err,
        },
    };
    if let Err(err) = stream.write_all(line).and_then(|()| stream.flush()) {
        // A daemon that refuses a connection (`unavailable` when its
        // connections are full, `forbidden`) answers and closes without
        // reading: the request then meets a closed socket, but the answer
        // is waiting to be read, and says more than "unreachable".
        if matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) && let Ok(answer) = read_answer(stream, path, expected_id, io_error)
        {
            return Ok(answer);
        }
        return Err(io_error(err));
    }
    read_answer(stream, path, expected_id, io_error)
}

fn read_answer(
    stream: &UnixStream,
    path: &Path,
    expected_id: Option<Value>,
    io_error: impl Fn(io::Error) -> ClientError,
) -> Result<Answer, ClientError> {
    let mut reader = BufReader::new(stream.take(MAX_ANSWER_BYTES));
    let mut answer = String::new();
    let n = reader.read_line(&mut answer).map_err(io_error)?;
    if n == 0 || !answer.ends_with('\n') {
        return Err(ClientError::Protocol(format!(
            "the daemon on {} closed the connection without a complete answer",
            path.display()
        )));
    }
    let answer = answer.trim_end_matches(['\n', '\r']).to_string();
    let value: Value = serde_json::from_str(&answer).map_err(|e| {
        ClientError::Protocol(format!("the daemon's answer is not JSON ({e}): {answer}"))
    })?;
    if !value.is_object() || value.get("ok").and_then(Value::as_bool).is_none() {
        return Err(ClientError::Protocol(format!(
            "the daemon's answer has no \"ok\" field: {answer}"
        )));
    }
    // Only a mismatch is an error: an answer without an id is what a
    // daemon sends when it could not read the request at all.
    if let (Some(got), Some(want)) = (value.get("id"), &expected_id)
        && got != want
    {
        return Err(ClientError::Protocol(format!(
            "the daemon answered request {got}, not {want}"
        )));
    }
    Ok(Answer {
        line: answer,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_resolution() {
        assert_eq!(
            resolve_from(Some("/run/x"), Probe::Present).unwrap(),
            PathBuf::from("/run/x/admin.sock")
        );
        assert_eq!(
            resolve_from(Some("/run/x"), Probe::Denied).unwrap(),
            PathBuf::from("/run/x/admin.sock")
        );
        assert_eq!(
            resolve_from(None, Probe::Present).unwrap(),
            PathBuf::from(SYSTEM_SOCKET)
        );
        assert_eq!(
            resolve_from(None, Probe::Absent).unwrap(),
            PathBuf::from("cronq-data/admin.sock")
        );
        assert_eq!(
            resolve_from(Some(""), Probe::Absent).unwrap(),
            PathBuf::from("cronq-data/admin.sock")
        );
        // Not seeing the system socket is not its absence.
        let err = resolve_from(None, Probe::Denied).unwrap_err();
        assert!(
            matches!(&err, ClientError::Denied { path, .. } if path == Path::new(SYSTEM_SOCKET)),
            "{err}"
        );
        assert_eq!(
            resolve(Some(Path::new("/tmp/s.sock"))).unwrap(),
            PathBuf::from("/tmp/s.sock")
        );
    }

    #[test]
    fn error_answers_are_read() {
        let value =
            serde_json::json!({"ok": false, "error": {"code": "not_found", "message": "no job x"}});
        let answer = Answer {
            line: value.to_string(),
            value,
        };
        assert!(!answer.ok());
        assert_eq!(answer.error(), ("not_found".into(), "no job x".into()));
    }

    #[test]
    fn exchange_over_a_socket_pair() {
        let (client, server) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut line = String::new();
            BufReader::new(&server).read_line(&mut line).unwrap();
            (&server)
                .write_all(b"{\"ok\":true,\"id\":5,\"pong\":true}\n")
                .unwrap();
            line
        });
        let answer = exchange(
            &client,
            b"{\"cmd\":\"ping\",\"id\":5}\n",
            Path::new("x"),
            None,
            Some(Value::from(5)),
        )
        .unwrap();
        assert!(answer.ok());
        assert_eq!(answer.line, r#"{"ok":true,"id":5,"pong":true}"#);
        assert_eq!(peer.join().unwrap(), "{\"cmd\":\"ping\",\"id\":5}\n");
    }

    #[test]
    fn a_refusal_sent_before_the_request_is_read_is_the_answer() {
        // The daemon's side answers `unavailable` and closes before the
        // request is written, as the server does for a connection over
        // its limits.
        let (client, server) = UnixStream::pair().unwrap();
        (&server)
            .write_all(b"{\"ok\":false,\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections\"}}\n")
            .unwrap();
        drop(server);
        let answer = exchange(
            &client,
            b"{\"cmd\":\"ping\",\"id\":5}\n",
            Path::new("x"),
            None,
            Some(Value::from(5)),
        )
        .unwrap();
        assert_eq!(
            answer.error(),
            ("unavailable".into(), "too many connections".into())
        );
        // With nothing waiting, a closed socket is still unreachable.
        let (client, server) = UnixStream::pair().unwrap();
        drop(server);
        let err = exchange(&client, b"{}\n", Path::new("x"), None, None).unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    }

    #[test]
    fn a_wrong_id_or_garbage_is_a_protocol_error() {
        for reply in [
            &b"{\"ok\":true,\"id\":6}\n"[..],
            b"hello\n",
            b"{\"ok\":true}",
        ] {
            let (client, server) = UnixStream::pair().unwrap();
            let reply = reply.to_vec();
            let peer = std::thread::spawn(move || {
                let mut line = String::new();
                BufReader::new(&server).read_line(&mut line).unwrap();
                (&server).write_all(&reply).unwrap();
            });
            let err =
                exchange(&client, b"{}\n", Path::new("x"), None, Some(Value::from(5))).unwrap_err();
            assert!(matches!(err, ClientError::Protocol(_)), "{err}");
            peer.join().unwrap();
        }
    }
}
