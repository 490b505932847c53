//! `import`: records of another system (a PocketBase collection) taken
//! over as jobs, each once however often it is sent, even after its job
//! finished (see `queue::import` and `store::import`).
//!
//! The request's shape is checked whole (an unknown field, a bad source or
//! record id is `bad_request`); each record's content is then checked on
//! its own, and a bad one is answered `refused` with the reason while the
//! rest are stored, so a client can report every refusal by record id.

use serde_json::{Value, json};

use super::{Ctx, Peer};
use crate::admin::protocol::request::ImportArgs;
use crate::admin::protocol::{AdminError, Answer, Code, Request};
use crate::queue::import::{MAX_IMPORT_RECORDS, MAX_RECORD_ID_CHARS, Offer, Taken, plain_id};

/// A request, checked: the source, each record's offer (or why its
/// content was refused) with its id, and whether it is a dry run.
pub(super) struct Parsed {
    source: String,
    records: Vec<(String, Result<Offer, String>)>,
    dry_run: bool,
}

pub(super) fn parse(req: &Request) -> Result<Parsed, AdminError> {
    let args: ImportArgs = req.args()?;
    check_source(&args.source)?;
    if args.records.is_empty() {
        return Err(AdminError::bad_request(
            "records: must hold at least one record",
        ));
    }
    if args.records.len() > MAX_IMPORT_RECORDS {
        return Err(AdminError::new(
            Code::TooLarge,
            format!(
                "records: {} records in one request, more than the limit of {MAX_IMPORT_RECORDS}",
                args.records.len()
            ),
        ));
    }
    let mut records = Vec::with_capacity(args.records.len());
    for (i, record) in args.records.into_iter().enumerate() {
        check_id(&format!("records[{i}].id"), &record.id)?;
        records.push((record.id.clone(), record.offer()));
    }
    Ok(Parsed {
        source: args.source,
        records,
        dry_run: args.dry_run.unwrap_or(false),
    })
}

/// `pocketbase:COLLECTION`, the one kind of source there is.
fn check_source(source: &str) -> Result<(), AdminError> {
    match source.strip_prefix("pocketbase:") {
        Some(collection) => check_id("source", collection),
        None => Err(AdminError::bad_request(format!(
            "source: expected pocketbase:COLLECTION, got {source:?}"
        ))),
    }
}

/// A record id or collection name (see `queue::import::plain_id`).
fn check_id(field: &str, id: &str) -> Result<(), AdminError> {
    if !plain_id(id) {
        return Err(AdminError::bad_request(format!(
            "{field}: must be 1 to {MAX_RECORD_ID_CHARS} letters, digits, _ or -, got {id:?}"
        )));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, peer: Peer, req: &Request) -> Result<Answer, AdminError> {
    let parsed = parse(req)?;
    ctx.admit(peer, parsed.records.len())?;
    let answers = take(ctx, parsed).await?;
    Ok(answer(&answers.0, answers.1).into())
}

/// Offers the good records to the queue; answers every record in order.
async fn take(ctx: &Ctx, parsed: Parsed) -> Result<(Vec<(String, Taken)>, bool), AdminError> {
    let mut out: Vec<(String, Option<Taken>)> = Vec::with_capacity(parsed.records.len());
    let mut offers = Vec::new();
    let mut at = Vec::new();
    for (i, (id, offer)) in parsed.records.into_iter().enumerate() {
        match offer {
            Ok(offer) => {
                offers.push(offer);
                at.push(i);
                out.push((id, None));
            }
            Err(reason) => out.push((id, Some(Taken::Refused(reason)))),
        }
    }
    let taken = ctx
        .queue
        .import(&parsed.source, offers, parsed.dry_run)
        .await?;
    for (i, t) in at.into_iter().zip(taken) {
        out[i].1 = Some(t);
    }
    let answers = out
        .into_iter()
        .map(|(id, t)| {
            (
                id,
                t.unwrap_or_else(|| Taken::Refused("not answered".into())),
            )
        })
        .collect();
    Ok((answers, parsed.dry_run))
}

/// `records` in request order, and the counts.
pub fn answer(answers: &[(String, Taken)], dry_run: bool) -> serde_json::Map<String, Value> {
    let (mut stored, mut dead, mut already, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let records: Vec<Value> = answers
        .iter()
        .map(|(id, taken)| match taken {
            Taken::Stored(job) => {
                stored += 1;
                let status = job.as_ref().map(|j| j.status.as_str());
                if status == Some("dead") {
                    dead += 1;
                }
                json!({"id": id, "outcome": "stored", "job_id": job.as_ref().map(|j| &j.id), "status": status, "error": job.as_ref().and_then(|j| j.last_error.as_ref())})
            }
            Taken::Already { job_id } => {
                already += 1;
                json!({"id": id, "outcome": "already", "job_id": job_id, "status": null, "error": null})
            }
            Taken::Refused(reason) => {
                refused += 1;
                json!({"id": id, "outcome": "refused", "job_id": null, "status": null, "error": reason})
            }
        })
        .collect();
    crate::result! {
        "records": records,
        "stored": stored,
        "dead": dead,
        "already": already,
        "refused": refused,
        "dry_run": dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Parsed, AdminError> {
        let req = Request::parse(line.as_bytes()).map_err(|(_, e)| e)?;
        parse(&req)
    }

    fn record(id: &str) -> Value {
        json!({"id": id, "name": "n", "payload": {"type": "noop"}})
    }

    #[test]
    fn the_shape_is_checked_whole_and_content_per_record() {
        let line = json!({"cmd": "import", "source": "pocketbase:queues", "records": [
            record("abc"),
            {"id": "late", "name": "n", "payload": {"type": "noop"}, "created": "yesterday"},
        ]})
        .to_string();
        let p = parsed(&line).unwrap();
        assert_eq!(p.source, "pocketbase:queues");
        assert!(!p.dry_run);
        assert!(p.records[0].1.is_ok());
        assert_eq!(p.records[1].0, "late");
        let err = p.records[1].1.as_ref().unwrap_err();
        assert!(
            err.starts_with("created: \"yesterday\" is not an RFC 3339"),
            "{err}"
        );

        for (bad, code, message) in [
            (
                json!({"cmd": "import", "source": "queues", "records": [record("a")]}),
                Code::BadRequest,
                "source: expected pocketbase:COLLECTION, got \"queues\"",
            ),
            (
                json!({"cmd": "import", "source": "pocketbase:a b", "records": [record("a")]}),
                Code::BadRequest,
                "source: must be 1 to 100 letters, digits, _ or -, got \"a b\"",
            ),
            (
                json!({"cmd": "import", "source": "pocketbase:q", "records": []}),
                Code::BadRequest,
                "records: must hold at least one record",
            ),
            (
                json!({"cmd": "import", "source": "pocketbase:q", "records": [record("a/b")]}),
                Code::BadRequest,
                "records[0].id: must be 1 to 100 letters, digits, _ or -, got \"a/b\"",
            ),
            (
                json!({"cmd": "import", "source": "pocketbase:q", "records": [record("a")], "force": true}),
                Code::BadRequest,
                "force: unknown field `force`, expected one of `source`, `records`, `dry_run`",
            ),
        ] {
            let err = parsed(&bad.to_string()).err().expect("refused");
            assert_eq!((err.code, err.message.as_str()), (code, message), "{bad}");
        }
        let many: Vec<Value> = (0..1001).map(|i| record(&format!("r{i}"))).collect();
        let err = parsed(
            &json!({"cmd": "import", "source": "pocketbase:q", "records": many}).to_string(),
        )
        .err()
        .expect("refused");
        assert_eq!(err.code, Code::TooLarge);
        assert!(err.message.contains("limit of 1000"), "{}", err.message);
    }

    #[test]
    fn the_answer_counts_each_outcome() {
        let answers = vec![
            ("a".to_string(), Taken::Stored(None)),
            ("b".to_string(), Taken::Already { job_id: "j".into() }),
            ("c".to_string(), Taken::Refused("payload.type: no".into())),
        ];
        let a = Value::Object(answer(&answers, true));
        assert_eq!(
            a,
            json!({
                "records": [
                    {"id": "a", "outcome": "stored", "job_id": null, "status": null, "error": null},
                    {"id": "b", "outcome": "already", "job_id": "j", "status": null, "error": null},
                    {"id": "c", "outcome": "refused", "job_id": null, "status": null, "error": "payload.type: no"},
                ],
                "stored": 1, "dead": 0, "already": 1, "refused": 1, "dry_run": true,
            })
        );
    }
}
