//! The admin socket: the server (framing, limits, peer credentials), the
//! protocol's types, and one module per command.

mod access;
pub mod cmd;
pub mod protocol;
pub mod rate;
pub mod server;
mod slots;
mod stall;
pub mod textfile;

pub use access::{Access, group_id, group_name};
