//! Why the store could not do what was asked, in terms every backend shares;
//! each backend converts its driver's errors into these at its edge.

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process held the write lock past the busy timeout, or no
    /// connection was free in time.
    #[error("the database is busy (locked by another process): {0}")]
    Busy(String),
    /// The disk is full: nothing was written.
    #[error("the database cannot be written, the disk is full: {0}")]
    Full(String),
    /// The database cannot be written for another reason (read-only, I/O
    /// error, the server is unreachable).
    #[error("the database cannot be written: {0}")]
    Unwritable(String),
    #[error(
        "the database at {at} has schema version {found}, newer than this cronq (it knows up to {known}); upgrade cronq or use another database"
    )]
    TooNew { at: String, found: i64, known: i64 },
    #[error("cannot open the database at {at}: {reason}")]
    Open { at: String, reason: String },
    #[error("the store is closed")]
    Closed,
    #[error("queue is full: {pending} jobs are pending, the limit is {limit}")]
    QueueFull { pending: u64, limit: u64 },
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Whether the failure is the database's state (busy, full, read-only),
    /// which the admin socket reports as `unavailable`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Busy(_)
                | StoreError::Full(_)
                | StoreError::Unwritable(_)
                | StoreError::Closed
        )
    }
}
