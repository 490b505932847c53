//! `ping`: is the daemon there.

use serde_json::{Map, Value};

use crate::admin::protocol::AdminError;

pub fn run() -> Result<Map<String, Value>, AdminError> {
    Ok(crate::result! { "pong": true })
}
