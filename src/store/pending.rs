//! A write queued with the store and the answer it will have once its
//! transaction commits: how a worker records an outcome without waiting for
//! the commit (every backend groups outcomes into few transactions).

use tokio::sync::oneshot;

use super::StoreError;

/// Sees a queued write's answer right after its transaction has committed
/// or failed, on whatever thread ran the commit. It must be quick and must
/// never wait: the commit's thread waits for it.
pub type AfterCommit<R> = Box<dyn FnOnce(&Result<R, StoreError>) + Send>;

/// A queued write's answer, known once its transaction has committed.
#[must_use = "a write is only known to be done once its commit is awaited"]
pub struct Pending<R>(oneshot::Receiver<Result<R, StoreError>>);

impl<R> Pending<R> {
    /// The answer a backend will send on `answer` after its commit.
    pub(crate) fn new(answer: oneshot::Receiver<Result<R, StoreError>>) -> Pending<R> {
        Pending(answer)
    }

    /// Waits for the commit.
    pub async fn committed(self) -> Result<R, StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}
