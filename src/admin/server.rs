//! The admin socket: binding, accepting, framing of JSON lines with a size
//! cap, peer credentials, the connection limits (`slots`) and the idle
//! timeout, which covers both a client that sends nothing and one that
//! reads none of its answers (`stall`).
//!
//! Requests on one connection are answered one at a time, in order, which
//! gives pipelining and half-close their protocol meaning for free: when
//! the client's side ends, every line read so far has been answered.
//!
//! Two commands hold a connection longer. `watch` turns it into a stream
//! of events (`cmd::watch`), with no idle timeout from then on. `wait`
//! may take up to a day: it ends early when the client hangs up (its
//! socket closed, not only half-closed, which is how `socat` sends a
//! request) and when the socket closes at the end of a shutdown.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::os::fd::{AsRawFd, RawFd};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::{self, Access};
use super::cmd::{self, Ctx, Peer};
use super::protocol::{self, AdminError, Code, Request};
use super::slots::Slots;
use super::stall::Stall;

/// The socket's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_uid: usize,
    /// How long a connection may send nothing, or leave its answers
    /// unread, before it is closed.
    pub idle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another cronq is running on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{path} exists and is not a socket; remove it or set CRONQ_SOCKET")]
    NotASocket { path: PathBuf },
    #[error("CRONQ_SOCKET_GROUP={0:?} names no group")]
    UnknownGroup(String),
    #[error("cannot create the admin socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Creates the socket at `path`, 0660 in a 0750 folder, group `group`.
/// A socket file left by a crashed daemon is replaced; a live one is not.
pub fn bind(
    path: &Path,
    group: Option<&str>,
) -> Result<(std::os::unix::net::UnixListener, Option<u32>), BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    let gid = match group {
        Some(name) => {
            Some(access::group_id(name).ok_or_else(|| BindError::UnknownGroup(name.to_string()))?)
        }
        None => None,
    };
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(io_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::AlreadyRunning(path.to_path_buf()));
            }
            tracing::info!(path = %path.display(), "replacing a stale admin socket left by an earlier daemon");
            std::fs::remove_file(path).map_err(io_err)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_err)?;
    }
    Ok((listener, gid))
}

/// Accepts connections until `shutdown`, serving each in its own task.
pub async fn serve(
    listener: UnixListener,
    ctx: Arc<Ctx>,
    limits: Limits,
    access: Access,
    shutdown: CancellationToken,
) {
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_uid);
    let tasks = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: pause rather than spin.
                    tracing::warn!(error = %e, "could not accept an admin connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let peer = match stream.peer_cred() {
            Ok(cred) => Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            },
            Err(e) => {
                tracing::debug!(error = %e, "an admin connection without peer credentials");
                continue;
            }
        };
        let slot = match slots.take(peer.uid, access.is_privileged(&peer)) {
            Ok(slot) => slot,
            Err(full) => {
                tracing::debug!(uid = peer.uid, reason = %full, "refused an admin connection");
                let error = AdminError::new(Code::Unavailable, full.to_string());
                tasks.spawn(refuse(stream, error, limits.idle_timeout));
                continue;
            }
        };
        let (ctx, access, shutdown) = (ctx.clone(), access.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = connection(stream, peer, &ctx, limits, &access, shutdown).await {
                if e.kind() == io::ErrorKind::TimedOut {
                    tracing::debug!(uid = peer.uid, error = %e, "closing an admin connection whose client does not read");
                } else {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
            }
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Answers `error` and closes. A refused peer holds no slot, so the write
/// is bounded too, though one short line always fits the socket buffer.
async fn refuse(stream: UnixStream, error: AdminError, limit: Duration) {
    let mut line = protocol::error(None, &error).to_string();
    line.push('\n');
    let mut stream = Stall::new(stream, limit);
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn connection(
    stream: UnixStream,
    peer: Peer,
    ctx: &Ctx,
    limits: Limits,
    access: &Access,
    shutdown: CancellationToken,
) -> io::Result<()> {
    if !access.allows(&peer) {
        tracing::warn!(
            uid = peer.uid,
            pid = peer.pid,
            code = Code::Forbidden.as_str(),
            "refused an admin connection from uid {}, who is outside the socket's group",
            peer.uid
        );
        refuse(
            stream,
            AdminError::new(
                Code::Forbidden,
                format!(
                    "uid {} is neither root, the daemon's user, nor in the socket's group",
                    peer.uid
                ),
            ),
            limits.idle_timeout,
        )
        .await;
        return Ok(());
    }
    let fd = stream.as_raw_fd();
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::new(Stall::new(write, limits.idle_timeout));
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(limits.idle_timeout, read_line(&mut reader, &mut line, limits.max_request_bytes)) => read,
            () = shutdown.cancelled() => break,
        };
        let answer = match read {
            Err(_) => {
                tracing::debug!(uid = peer.uid, "closing an idle admin connection");
                break;
            }
            Ok(read) => match read? {
                Line::Eof => break,
                Line::TooLong => {
                    let e = AdminError::new(
                        Code::TooLarge,
                        format!(
                            "the request line is longer than the limit of {} bytes (CRONQ_MAX_REQUEST_BYTES); closing the connection",
                            limits.max_request_bytes
                        ),
                    );
                    log_refusal(peer, None, &e);
                    writer
                        .write_all(protocol::error(None, &e).to_string().as_bytes())
                        .await?;
                    writer.write_all(b"\n").await?;
                    break;
                }
                Line::Complete if line.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Complete => match Request::parse(&line) {
                    Ok(req) if req.cmd == "watch" => match cmd::watch::start(ctx, &req) {
                        Ok((sub, filter)) => {
                            let first =
                                protocol::ok(req.id, crate::result! { "watching": true }.into());
                            writer.write_all(first.as_bytes()).await?;
                            writer.write_all(b"\n").await?;
                            writer.flush().await?;
                            let gone = hung_up(&mut reader, fd, true);
                            cmd::watch::stream(sub, filter, gone, &mut writer, &shutdown).await?;
                            // No last flush: a client that stopped reading
                            // would hold it for the stall limit.
                            return Ok(());
                        }
                        Err(e) => {
                            log_refusal(peer, Some(&req.cmd), &e);
                            protocol::error(req.id, &e).to_string()
                        }
                    },
                    Ok(req) if req.cmd == "wait" => {
                        let id = req.id.clone();
                        tokio::select! {
                            answer = answer_parsed(ctx, peer, Ok(req)) => answer,
                            () = hung_up(&mut reader, fd, false) => {
                                tracing::debug!(uid = peer.uid, "a client gave up its wait");
                                break;
                            }
                            () = shutdown.cancelled() => protocol::error(
                                id,
                                &AdminError::new(Code::Unavailable, "the daemon is stopping; wait again once it is back"),
                            )
                            .to_string(),
                        }
                    }
                    parsed => answer_parsed(ctx, peer, parsed).await,
                },
            },
        };
        writer.write_all(answer.as_bytes()).await?;
        writer.write_all(b"\n").await?;
        // Pipelined requests are answered in one write.
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    writer.shutdown().await
}

async fn answer_parsed(
    ctx: &Ctx,
    peer: Peer,
    parsed: Result<Request, (Option<serde_json::Value>, AdminError)>,
) -> String {
    match parsed {
        Err((id, e)) => {
            log_refusal(peer, None, &e);
            protocol::error(id, &e).to_string()
        }
        Ok(req) => match cmd::dispatch(ctx, peer, &req).await {
            Ok(answer) => protocol::ok(req.id, answer),
            Err(e) => {
                log_refusal(peer, Some(&req.cmd), &e);
                protocol::error(req.id, &e).to_string()
            }
        },
    }
}

/// Resolves when the client has hung up: its side of the socket is closed,
/// not merely shut for writing. Reading stops at the first line it sends
/// (kept for the next request) unless `discard`, when everything it sends
/// is read and ignored (a watching connection takes no more requests).
/// Costs nothing while the client is quiet: no timer, only the socket.
async fn hung_up(reader: &mut BufReader<OwnedReadHalf>, fd: RawFd, discard: bool) {
    loop {
        if !discard && !reader.buffer().is_empty() {
            return std::future::pending().await;
        }
        match reader.fill_buf().await {
            Err(_) => return,
            Ok([]) if peer_closed(fd) => return,
            // Half-closed: the client still reads, as `socat` does.
            Ok([]) => return std::future::pending().await,
            Ok(data) if discard => {
                let n = data.len();
                reader.consume(n);
            }
            Ok(_) => return std::future::pending().await,
        }
    }
}

/// Whether the peer closed its socket (POLLHUP), as opposed to having only
/// shut its writing side.
fn peer_closed(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd on an open descriptor; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Longest piece of a client's text (a command name, an error message that
/// quotes a field) written into a log line: clients are not trusted to keep
/// the log readable.
const LOGGED_TEXT_CHARS: usize = 300;

/// Logs a refused request at warn with its code and the peer. `not_found`
/// is only debug: it is the normal answer about a job that succeeded and was
/// deleted, which pollers such as `cronq wait` scripts ask about often.
fn log_refusal(peer: Peer, cmd: Option<&str>, e: &AdminError) {
    let cmd = clip(cmd.unwrap_or("(unparsed)"));
    let message = clip(&e.message);
    let code = e.code.as_str();
    if e.code == Code::NotFound {
        tracing::debug!(cmd = %cmd, code, uid = peer.uid, pid = peer.pid, "admin command {cmd} from uid {}: {code}: {message}", peer.uid);
        return;
    }
    tracing::warn!(
        cmd = %cmd,
        code,
        uid = peer.uid,
        pid = peer.pid,
        error = %message,
        "admin command {cmd} from uid {} refused ({code}): {message}",
        peer.uid
    );
}

fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(LOGGED_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (without the `\n`), never
/// holding more than `max` bytes of it. A last line without `\n` before EOF
/// counts as complete.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        if let Some(i) = available.iter().position(|b| *b == b'\n') {
            if buf.len() + i > max {
                reader.consume(i + 1);
                return Ok(Line::TooLong);
            }
            buf.extend_from_slice(&available[..i]);
            reader.consume(i + 1);
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
        let n = available.len();
        if buf.len() + n > max {
            reader.consume(n);
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(available);
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<String, &'static str>> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf, max).await.unwrap() {
                Line::Eof => return out,
                Line::TooLong => out.push(Err("too long")),
                Line::Complete => out.push(Ok(String::from_utf8_lossy(&buf).into_owned())),
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_capped_and_a_last_partial_line_counts() {
        assert_eq!(
            lines(b"ab\ncdefgh\r\nxyz", 8).await,
            vec![Ok("ab".into()), Ok("cdefgh".into()), Ok("xyz".into())]
        );
        assert_eq!(lines(b"123456789\nok\n", 8).await[0], Err("too long"));
        assert_eq!(lines(b"12345678\n", 8).await, vec![Ok("12345678".into())]);
    }
}
