//! A writer that gives up on a peer that stops reading.
//!
//! The idle timeout watches reads; a client that pipelines requests and
//! never reads its answers instead blocks the connection's writes once the
//! socket buffer is full, and would hold its connection (and its place in
//! CRONQ_MAX_CONNECTIONS) forever. [`Stall`] fails a write, flush or
//! shutdown that has made no progress for the limit with `TimedOut`. A
//! slow reader that takes its answers bit by bit keeps the connection: the
//! clock restarts at every byte written.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

pub struct Stall<W> {
    inner: W,
    limit: Duration,
    /// Armed when a write first has to wait; reset by any progress.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<W> Stall<W> {
    pub fn new(inner: W, limit: Duration) -> Stall<W> {
        Stall {
            inner,
            limit,
            deadline: None,
        }
    }

    /// After the inner writer answered `Pending`: pending still, or the
    /// error once the limit has passed without progress.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read none of its answers for {} s",
                limit.as_secs()
            ),
        )))
    }

    fn outcome<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Stall<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.outcome(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.outcome(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.outcome(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_without_progress_fails_after_the_limit() {
        // A pipe that holds 16 bytes, and a reader that never reads.
        let (writer, _reader) = tokio::io::duplex(16);
        let limit = Duration::from_millis(200);
        let mut stalled = Stall::new(writer, limit);
        let started = Instant::now();
        let err = stalled.write_all(&[b'x'; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);
    }

    #[tokio::test]
    async fn a_slow_reader_keeps_the_connection() {
        // Each pause of the reader is far shorter than the limit, the
        // whole transfer longer than it.
        let (writer, mut reader) = tokio::io::duplex(16);
        let limit = Duration::from_secs(5);
        let mut slow = Stall::new(writer, limit);
        let drain = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 8];
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                match reader.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        slow.write_all(&[b'y'; 64]).await.unwrap();
        slow.shutdown().await.unwrap();
        drop(slow);
        assert_eq!(drain.await.unwrap(), vec![b'y'; 64]);
    }
}
