//! The `email` job's `data`, parsed into a typed [`EmailJob`].
//!
//! The same parser serves `validate` (at enqueue) and `run`, because rows can
//! reach the queue without passing `validate` (another program, an older
//! version). `validate` additionally checks the placeholders it can see
//! without reading a template (subject, inline bodies) against `variables`;
//! the handler then checks a named template against the files as they are
//! at enqueue, and the run checks them again as they are at delivery, since
//! templates may legitimately change in between.

use std::str::FromStr;

use lettre::message::Mailbox;
use serde_json::{Map, Value};

use super::EmailError;
use super::template::{self, Variables};

/// The keys `data` may hold; anything else is refused, so a typo such as
/// `bbc` fails at enqueue instead of silently dropping recipients.
const KEYS: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "subject",
    "template",
    "variables",
    "text",
    "html",
];

/// Most recipients (to + cc + bcc) one job may address; common servers
/// accept 100 to 1000 per message.
pub const MAX_RECIPIENTS: usize = 1000;

/// Where the bodies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `NAME.txt` and/or `NAME.html` in the templates folder.
    Template(String),
    /// Given in the job; at least one is present.
    Inline {
        text: Option<String>,
        html: Option<String>,
    },
}

/// A parsed, checked `email` job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailJob {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub body: Body,
    pub variables: Variables,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> EmailError {
    EmailError::Payload {
        field: field.into(),
        reason: reason.into(),
    }
}

impl EmailJob {
    /// Parses `data`; the error names the field at fault.
    pub fn parse(data: &Value) -> Result<EmailJob, EmailError> {
        let Value::Object(object) = data else {
            return Err(bad("data", "expected an object"));
        };
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(
                key.as_str(),
                format!("unknown key; expected one of {}", KEYS.join(", ")),
            ));
        }

        let to = mailboxes(object, "to")?;
        if to.is_empty() {
            return Err(bad(
                "to",
                if object.contains_key("to") {
                    "at least one recipient is required"
                } else {
                    "required"
                },
            ));
        }
        let cc = mailboxes(object, "cc")?;
        let bcc = mailboxes(object, "bcc")?;
        let count = to.len() + cc.len() + bcc.len();
        if count > MAX_RECIPIENTS {
            return Err(bad(
                "to",
                format!(
                    "at most {MAX_RECIPIENTS} recipients in to, cc and bcc together, got {count}"
                ),
            ));
        }

        let subject = match optional_string(object, "subject")? {
            None => return Err(bad("subject", "required")),
            Some(s) if s.trim().is_empty() => return Err(bad("subject", "cannot be empty")),
            Some(s) => s,
        };

        let template = optional_string(object, "template")?;
        let text = optional_string(object, "text")?;
        let html = optional_string(object, "html")?;
        let body = match (template, text, html) {
            (Some(name), None, None) => {
                template::check_name(&name).map_err(|reason| bad("template", reason))?;
                Body::Template(name)
            }
            (Some(_), _, _) => {
                return Err(bad(
                    "template",
                    "give either a template or inline text/html, not both",
                ));
            }
            (None, None, None) => {
                return Err(bad(
                    "template",
                    "required, unless the body is given inline as text and/or html",
                ));
            }
            (None, text, html) => Body::Inline { text, html },
        };

        let variables = Variables::from_json("variables", object.get("variables"))?;

        Ok(EmailJob {
            to,
            cc,
            bcc,
            subject,
            body,
            variables,
        })
    }

    /// Checks that every placeholder in the subject and inline bodies has a
    /// value. Template bodies are checked when they are rendered.
    pub fn check_visible_placeholders(&self) -> Result<(), EmailError> {
        let mut sources = vec![("subject", self.subject.as_str())];
        if let Body::Inline { text, html } = &self.body {
            sources.extend(text.as_deref().map(|t| ("text", t)));
            sources.extend(html.as_deref().map(|h| ("html", h)));
        }
        for (what, source) in sources {
            if let Some(name) =
                template::placeholders(source).find(|name| self.variables.get(name).is_none())
            {
                return Err(EmailError::MissingVariable {
                    what: what.to_string(),
                    name: name.to_string(),
                });
            }
        }
        Ok(())
    }
}

fn optional_string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, EmailError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "expected a string")),
    }
}

/// `key` as one address or a list of them; absent means none.
fn mailboxes(object: &Map<String, Value>, key: &str) -> Result<Vec<Mailbox>, EmailError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![mailbox(key, s)?]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("{key}[{i}]");
                match item {
                    Value::String(s) => mailbox(&field, s),
                    _ => Err(bad(field, "expected a string")),
                }
            })
            .collect(),
        Some(_) => Err(bad(key, "expected an address or a list of addresses")),
    }
}

/// One address, `a@example.com` or `Name <a@example.com>`.
fn mailbox(field: &str, s: &str) -> Result<Mailbox, EmailError> {
    Mailbox::from_str(s.trim()).map_err(|_| bad(field, format!("{s:?} is not an email address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(data: Value) -> String {
        EmailJob::parse(&data).unwrap_err().to_string()
    }

    #[test]
    fn the_replaced_systems_example_parses() {
        let job = EmailJob::parse(&json!({
            "to": "user@example.com",
            "subject": "Welcome {{name}}!",
            "template": "welcome_email",
            "variables": {"name": "John Doe", "company": "Acme Corp"}
        }))
        .unwrap();
        assert_eq!(job.to.len(), 1);
        assert_eq!(job.to[0].email.to_string(), "user@example.com");
        assert_eq!(job.body, Body::Template("welcome_email".to_string()));
        assert_eq!(job.variables.get("company"), Some("Acme Corp"));
        job.check_visible_placeholders().unwrap();
    }

    #[test]
    fn lists_and_display_names() {
        let job = EmailJob::parse(&json!({
            "to": ["a@example.com", "Bob Smith <bob@example.com>"],
            "cc": "c@example.com",
            "bcc": ["d@example.com"],
            "subject": "s",
            "text": "t"
        }))
        .unwrap();
        assert_eq!(job.to[1].name.as_deref(), Some("Bob Smith"));
        assert_eq!(job.cc.len(), 1);
        assert_eq!(job.bcc.len(), 1);
        assert_eq!(
            job.body,
            Body::Inline {
                text: Some("t".to_string()),
                html: None
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(json!({"to": ["a@example.com", "bob@"], "subject": "s", "text": "t"})),
            "to[1]: \"bob@\" is not an email address"
        );
        assert_eq!(
            err(json!({"to": "nobody", "subject": "s", "text": "t"})),
            "to: \"nobody\" is not an email address"
        );
        assert_eq!(
            err(json!({"to": "a@example.com", "cc": [1], "subject": "s", "text": "t"})),
            "cc[0]: expected a string"
        );
        assert_eq!(err(json!({"subject": "s", "text": "t"})), "to: required");
        assert_eq!(
            err(json!({"to": [], "subject": "s", "text": "t"})),
            "to: at least one recipient is required"
        );
        assert_eq!(
            err(json!({"to": "a@example.com", "text": "t"})),
            "subject: required"
        );
        assert_eq!(
            err(json!({"to": "a@example.com", "subject": " ", "text": "t"})),
            "subject: cannot be empty"
        );
        assert!(
            err(json!({"to": "a@example.com", "subject": "s", "bbc": "x", "text": "t"}))
                .starts_with("bbc: unknown key")
        );
        assert!(
            err(json!({"to": "a@example.com", "subject": "s"})).starts_with("template: required")
        );
        assert!(
            err(json!({"to": "a@example.com", "subject": "s", "template": "w", "html": "h"}))
                .starts_with("template: give either")
        );
        assert!(
            err(json!({"to": "a@example.com", "subject": "s", "template": "../etc/passwd"}))
                .starts_with("template: \"../etc/passwd\" is not a template name")
        );
        assert_eq!(
            err(
                json!({"to": "a@example.com", "subject": "s", "text": "t", "variables": {"v": [1]}})
            ),
            "variables.v: arrays and objects cannot be rendered; pass a string, a number, a boolean or null"
        );
        assert_eq!(err(json!([1])), "data: expected an object");
    }

    #[test]
    fn too_many_recipients() {
        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@example.com"))
            .collect();
        assert!(
            err(json!({"to": many, "subject": "s", "text": "t"})).starts_with("to: at most 1000")
        );
    }

    #[test]
    fn visible_placeholders_need_values() {
        let job = EmailJob::parse(&json!({
            "to": "a@example.com",
            "subject": "Hi {{name}}",
            "html": "<p>{{ company }}</p>",
            "variables": {"name": "x"}
        }))
        .unwrap();
        assert_eq!(
            job.check_visible_placeholders().unwrap_err().to_string(),
            "html: no value for {{company}} in variables"
        );
    }
}
