//! Server-sent events, as PocketBase's realtime channel sends them: the
//! parser (the WHATWG event-stream format, the part PocketBase uses) and
//! the stream of one realtime connection.
//!
//! Written here rather than taken from a crate: the format is a few lines
//! (`event:`, `data:`, `id:`, comments, a blank line ends an event), and
//! the one thing a crate would have to be told, a bound on what a hostile
//! or broken server can make it buffer, is a constant here.

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use serde_json::Value;

use super::client::{PbError, REQUEST_TIMEOUT};

/// Longest event (all its `data:` lines) or pending line kept, in bytes.
pub const MAX_EVENT_BYTES: usize = 8 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// `event:`, or `message` when the event named none.
    pub name: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// The last `id:` seen.
    pub id: String,
}

/// Turns bytes into events; feed it chunks as they come.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one
    /// belongs to that line end.
    after_cr: bool,
    name: String,
    data: String,
    has_data: bool,
    id: String,
    ready: std::collections::VecDeque<Event>,
}

impl Parser {
    /// Takes a chunk; events it completes are kept for [`Parser::next`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), String> {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line)?;
                }
                _ => {
                    if self.line.len() >= MAX_EVENT_BYTES {
                        return Err(format!(
                            "a realtime line is longer than {MAX_EVENT_BYTES} bytes"
                        ));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    /// The next complete event.
    pub fn next_event(&mut self) -> Option<Event> {
        self.ready.pop_front()
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), String> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                if self.data.len() + value.len() > MAX_EVENT_BYTES {
                    return Err(format!(
                        "a realtime event is longer than {MAX_EVENT_BYTES} bytes"
                    ));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = value.to_string(),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let name = std::mem::take(&mut self.name);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        self.ready.push_back(Event {
            name: if name.is_empty() {
                "message".to_string()
            } else {
                name
            },
            data,
            id: self.id.clone(),
        });
    }
}

/// One realtime connection: its client id and its events.
pub struct Realtime {
    body: Incoming,
    parser: Parser,
    client_id: String,
    url: String,
}

impl Realtime {
    /// Reads the first event, `PB_CONNECT`, which carries the client id.
    pub(super) async fn open(body: Incoming, url: &str) -> Result<Realtime, PbError> {
        let mut stream = Realtime {
            body,
            parser: Parser::default(),
            client_id: String::new(),
            url: url.to_string(),
        };
        let first = tokio::time::timeout(REQUEST_TIMEOUT, stream.next())
            .await
            .map_err(|_| PbError::Timeout {
                url: url.to_string(),
            })??;
        let answer = |reason: String| PbError::Answer {
            path: "api/realtime".into(),
            reason,
        };
        let Some(first) = first else {
            return Err(answer("the stream ended before its first event".into()));
        };
        if first.name != "PB_CONNECT" {
            return Err(answer(format!(
                "the first event is {:?}, not PB_CONNECT",
                first.name
            )));
        }
        let data: Value = serde_json::from_str(&first.data)
            .map_err(|e| answer(format!("PB_CONNECT's data is not JSON: {e}")))?;
        match data.get("clientId").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => stream.client_id = id.to_string(),
            _ => return Err(answer("PB_CONNECT names no clientId".into())),
        }
        Ok(stream)
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The next event; `None` when PocketBase closed the stream (it does
    /// after a few minutes without events). Cancel-safe: what was read is
    /// kept in the parser.
    pub async fn next(&mut self) -> Result<Option<Event>, PbError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| PbError::Unreachable {
                url: self.url.clone(),
                reason: format!("the realtime stream broke: {e}"),
            })?;
            if let Ok(data) = frame.into_data() {
                self.push(&data)?;
            }
        }
    }

    fn push(&mut self, data: &Bytes) -> Result<(), PbError> {
        self.parser.push(data).map_err(|reason| PbError::Answer {
            path: "api/realtime".into(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::default();
        for chunk in chunks {
            parser.push(chunk).unwrap();
        }
        std::iter::from_fn(|| parser.next_event()).collect()
    }

    #[test]
    fn pocketbases_stream_reads_as_events() {
        let stream = b"id:abc\nevent:PB_CONNECT\ndata:{\"clientId\":\"abc\"}\n\n\
                       id:abc\nevent:queues\ndata:{\"action\":\"create\"}\n\n";
        let got = events(&[stream]);
        assert_eq!(
            got,
            vec![
                Event {
                    name: "PB_CONNECT".into(),
                    data: r#"{"clientId":"abc"}"#.into(),
                    id: "abc".into()
                },
                Event {
                    name: "queues".into(),
                    data: r#"{"action":"create"}"#.into(),
                    id: "abc".into()
                },
            ]
        );
    }

    #[test]
    fn chunks_split_anywhere_and_every_line_end_works() {
        let whole: &[u8] = b": a comment\r\nevent: x\r\ndata: one\r\ndata:two\r\n\r\ndata\n\n";
        let expected = vec![
            Event {
                name: "x".into(),
                data: "one\ntwo".into(),
                id: String::new(),
            },
            Event {
                name: "message".into(),
                data: String::new(),
                id: String::new(),
            },
        ];
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(events(&[a, b]), expected, "cut at {cut}");
        }
        assert_eq!(events(&[b"data:a\rdata:b\r\r"])[0].data, "a\nb");
        // A blank line without data dispatches nothing.
        assert!(events(&[b"event:x\n\n"]).is_empty());
    }

    #[test]
    fn a_line_or_event_past_the_limit_is_an_error() {
        let mut parser = Parser::default();
        let long = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(parser.push(&long).is_err());
        let mut parser = Parser::default();
        let half = format!("data:{}\n", "y".repeat(MAX_EVENT_BYTES / 2 + 1));
        parser.push(half.as_bytes()).unwrap();
        assert!(parser.push(half.as_bytes()).is_err());
    }
}
