//! How many admin connections each peer may hold.
//!
//! One pool of CRONQ_MAX_CONNECTIONS, of which each uid may hold at most
//! CRONQ_MAX_CONNECTIONS_PER_UID (default half), so one user's leaked or
//! hostile connections leave room for everyone else. Beyond both limits,
//! root and the daemon's own user have [`RESERVED`] connections of their
//! own: whoever fills the pool, an operator can still ask `status` and
//! cancel things. Counting is by uid (SO_PEERCRED), which a peer cannot
//! choose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections root and the daemon's user may open when the pool, or
/// their share of it, is full.
pub const RESERVED: usize = 4;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("too many connections: the limit is {limit} (CRONQ_MAX_CONNECTIONS)")]
    Total { limit: usize },
    #[error(
        "too many connections from uid {uid}: the limit per uid is {limit} (CRONQ_MAX_CONNECTIONS_PER_UID)"
    )]
    Uid { uid: u32, limit: usize },
}

/// The connection counts; a cheap `Clone` handle.
#[derive(Debug, Clone)]
pub struct Slots {
    total: usize,
    per_uid: usize,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Connections in the pool, and per uid.
    pooled: usize,
    by_uid: HashMap<u32, usize>,
    /// Connections of privileged peers beyond the pool.
    reserved: usize,
}

/// One held connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
    reserved: bool,
}

impl Slots {
    pub fn new(total: usize, per_uid: usize) -> Slots {
        Slots {
            total,
            per_uid: per_uid.clamp(1, total.max(1)),
            counts: Arc::default(),
        }
    }

    /// Takes a place for a connection of `uid`; `privileged` (root, the
    /// daemon's user) may fall back on the reserve.
    pub fn take(&self, uid: u32, privileged: bool) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = counts.by_uid.get(&uid).copied().unwrap_or(0);
        // The uid's own share first: it is the limit that peer can act on.
        let refusal = if mine >= self.per_uid {
            Some(Full::Uid {
                uid,
                limit: self.per_uid,
            })
        } else if counts.pooled >= self.total {
            Some(Full::Total { limit: self.total })
        } else {
            None
        };
        let reserved = match refusal {
            None => false,
            Some(_) if privileged && counts.reserved < RESERVED => true,
            Some(full) => return Err(full),
        };
        if reserved {
            counts.reserved += 1;
        } else {
            counts.pooled += 1;
            *counts.by_uid.entry(uid).or_default() += 1;
        }
        Ok(Slot {
            counts: self.counts.clone(),
            uid,
            reserved,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if self.reserved {
            counts.reserved -= 1;
            return;
        }
        counts.pooled -= 1;
        if let Some(n) = counts.by_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                counts.by_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uid_gets_its_share_and_others_the_rest() {
        let slots = Slots::new(4, 2);
        let a: Vec<Slot> = (0..2).map(|_| slots.take(1000, false).unwrap()).collect();
        assert_eq!(
            slots.take(1000, false).unwrap_err(),
            Full::Uid {
                uid: 1000,
                limit: 2
            }
        );
        let b: Vec<Slot> = (0..2).map(|_| slots.take(1001, false).unwrap()).collect();
        assert_eq!(
            slots.take(1002, false).unwrap_err(),
            Full::Total { limit: 4 }
        );
        drop(a);
        let _c = slots.take(1002, false).unwrap();
        drop(b);
    }

    #[test]
    fn root_and_the_daemons_user_have_a_reserve_beyond_both_limits() {
        let slots = Slots::new(2, 1);
        let _pool: Vec<Slot> = [1000, 1001]
            .iter()
            .map(|uid| slots.take(*uid, false).unwrap())
            .collect();
        let reserve: Vec<Slot> = (0..RESERVED)
            .map(|_| slots.take(0, true).unwrap())
            .collect();
        assert_eq!(slots.take(0, true).unwrap_err(), Full::Total { limit: 2 });
        drop(reserve);
        // The reserve is given back: a privileged peer gets in again.
        let _again = slots.take(0, true).unwrap();
        assert!(slots.take(1002, false).is_err());
    }

    #[test]
    fn a_privileged_uid_at_its_share_also_uses_the_reserve() {
        let slots = Slots::new(10, 1);
        let _first = slots.take(0, true).unwrap();
        let _second = slots.take(0, true).unwrap();
        assert!(slots.take(1000, false).is_ok());
    }
}
