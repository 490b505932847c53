//! A sleep until a wall-clock instant on a Linux timerfd.
//!
//! tokio's timer wheel wakes its driver once per level a deadline cascades
//! through: a minute-long sleep woke an idle daemon three times (about 4 s
//! early, 64 ms early, then on time; strace of the idle daemon,
//! benches/idle.rs). A timerfd set to the absolute instant wakes the
//! runtime's I/O driver once, when it is due. Set with
//! `TFD_TIMER_CANCEL_ON_SET`, it also ends early when the wall clock is
//! set, so the caller re-reads the time at once rather than sleeping
//! toward a deadline that moved.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::Millis;

/// Returns at `at` (milliseconds since the epoch, by the wall clock), or
/// earlier if the wall clock is set meanwhile. An error means the timerfd
/// could not be made or read; the caller sleeps the rest another way.
pub async fn sleep_until(at: Millis) -> io::Result<()> {
    // SAFETY: timerfd_create takes no pointers; the result is checked.
    let fd = unsafe {
        libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let at = at.max(1);
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: at.div_euclid(1000),
            tv_nsec: at.rem_euclid(1000) * 1_000_000,
        },
    };
    let flags = libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET;
    // SAFETY: `spec` outlives the call; the old value is not asked for.
    let set = unsafe { libc::timerfd_settime(fd.as_raw_fd(), flags, &spec, std::ptr::null_mut()) };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an OwnedFd's descriptor stays open, and the same, until the
    // AsyncFd that owns it drops it.
    let timer = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut ready = timer.readable().await?;
        let read = ready.try_io(|timer| {
            let mut expirations = [0u8; 8];
            // SAFETY: the buffer is 8 bytes, as a timerfd read needs.
            let n = unsafe {
                libc::read(
                    timer.get_ref().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        match read {
            Ok(Ok(())) => return Ok(()),
            // The wall clock was set: the deadline may have moved.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ECANCELED) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            // Woken without an expiration to read: wait again.
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::clock::{Clock, SystemClock};

    #[tokio::test]
    async fn it_returns_at_the_instant_and_not_before() {
        let started = Instant::now();
        let at = SystemClock.now_ms() + 150;
        sleep_until(at).await.unwrap();
        assert!(SystemClock.now_ms() >= at);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(140), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn an_instant_already_past_returns_at_once() {
        let started = Instant::now();
        sleep_until(SystemClock.now_ms() - 60_000).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
