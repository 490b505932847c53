//! Bridges: producers that bring another system's work into the queue, as
//! the admin socket does, through the same checks (`queue::import`).
//!
//! - `pocketbase`: the replaced system's `queues` collection, imported
//!   once from its `data.db` file or followed live over its API.

pub mod pocketbase;
