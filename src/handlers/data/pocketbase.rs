//! A PocketBase collection as a source (`pocketbase:users`): the records
//! of the configured PocketBase (CRONQ_POCKETBASE_*), oldest first, a page
//! at a time, so the replaced system's users-to-CSV export reads the real
//! collection without holding it in memory.
//!
//! The columns are the collection's fields in its own order, hidden ones
//! (a password hash, a token key) left out, so an empty collection still
//! exports its header. The work runs on the handler's blocking thread,
//! which waits on the daemon's runtime for each page.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::runtime::Handle;

use super::error::DataError;
use super::rows::{Flow, RowSink};
use crate::bridge::pocketbase::{Client, PbError};
use crate::config::PocketBaseConfig;
use crate::queue::import::plain_id;

/// Records per page.
const PAGE: usize = 500;

/// The configured PocketBase, its client made at the first job.
#[derive(Debug)]
pub struct PocketBaseSource {
    config: PocketBaseConfig,
    client: OnceLock<Arc<Client>>,
}

impl PocketBaseSource {
    pub fn new(config: PocketBaseConfig) -> PocketBaseSource {
        PocketBaseSource {
            config,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<Arc<Client>, DataError> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client = Arc::new(Client::new(&self.config).map_err(remote)?);
        Ok(self.client.get_or_init(|| client).clone())
    }

    /// Pushes every record of `collection` into `sink`. Blocking: waits
    /// on `runtime` for each request.
    pub fn read(
        &self,
        runtime: &Handle,
        collection: &str,
        sink: &mut dyn RowSink,
    ) -> Result<(), DataError> {
        let client = self.client()?;
        let columns = runtime
            .block_on(client.fields(collection))
            .map_err(|e| missing_or_remote(collection, e))?;
        let by_created = columns.iter().any(|c| c == "created");
        sink.begin(columns.clone())?;
        let mut cursor: Option<(String, String)> = None;
        loop {
            let filter = cursor.as_ref().map(|(created, id)| {
                if by_created {
                    format!("(created > '{created}' || (created = '{created}' && id > '{id}'))")
                } else {
                    format!("id > '{id}'")
                }
            });
            let sort = if by_created { "created,id" } else { "id" };
            let page = runtime
                .block_on(client.list(collection, filter.as_deref(), sort, PAGE))
                .map_err(|e| missing_or_remote(collection, e))?;
            let full = page.len() == PAGE;
            let next = page.last().map(cursor_of).transpose()?;
            for record in page {
                let row = columns
                    .iter()
                    .map(|c| record.get(c).cloned().unwrap_or(Value::Null))
                    .collect();
                if sink.row(row)? == Flow::Stop {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Why a `pocketbase:` source cannot be read: no PocketBase is set up.
pub fn not_configured(collection: &str) -> DataError {
    DataError::invalid(
        "source",
        format!(
            "pocketbase:{collection} needs a PocketBase to read: set CRONQ_POCKETBASE_URL, \
             CRONQ_POCKETBASE_EMAIL and a password (see cronq(8))"
        ),
    )
}

/// The page's cursor after `record`, when it is safe in a filter.
fn cursor_of(record: &Value) -> Result<(String, String), DataError> {
    let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
    let created = record
        .get("created")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let safe = created
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.' | 'Z' | 'T'));
    if !plain_id(id) || !safe {
        return Err(DataError::bad_input(
            "source",
            format!("a record's id {id:?} or created {created:?} cannot be paged past"),
        ));
    }
    Ok((created.to_string(), id.to_string()))
}

fn missing_or_remote(collection: &str, e: PbError) -> DataError {
    if e.status() == Some(404) {
        return DataError::Missing {
            field: "source",
            what: format!("the PocketBase collection {collection:?}"),
        };
    }
    remote(e)
}

/// PocketBase unreachable or slow is retried; a refusal is not.
fn remote(e: PbError) -> DataError {
    let retry = matches!(e, PbError::Unreachable { .. } | PbError::Timeout { .. })
        || e.status().is_some_and(|s| s >= 500);
    DataError::Remote {
        reason: e.to_string(),
        retry,
    }
}
