//! `email`: renders a message from a template or inline bodies and sends it
//! over SMTP with lettre.
//!
//! This module owns the handler, its error type and the mapping of every
//! failure to retry-or-bury; `payload` parses job data, `template` finds and
//! renders bodies, `transport` holds the one pooled SMTP connection set.
//!
//! The choice a reader may question: a handler whose settings are missing
//! or wrong is still built ([`EmailHandler::unconfigured`]) and registered
//! disabled with the reason, rather than left out. Enqueues of `email` then
//! fail with "disabled: SMTP_HOST is not set" instead of "unknown job type",
//! and jobs already queued wait for a corrected configuration instead of
//! dying.
//!
//! Logging: the password never reaches a log line or an error (the settings
//! are not logged and SMTP errors are scrubbed). Bodies and variables are
//! logged at debug level only, with secret-looking keys redacted.

mod payload;
mod template;
mod transport;

use std::path::PathBuf;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde_json::Value;

use crate::config::SmtpConfig;
use crate::queue::handler::{Handler, JobContext, JobError, Registration};

pub use payload::{Body, EmailJob, MAX_RECIPIENTS};
pub use template::{MAX_TEMPLATE_BYTES, Variables};
pub use transport::{COMMAND_TIMEOUT, Mailer};

/// Everything that can go wrong with an email job or the handler's setup.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// Settings missing; the text says which.
    #[error("{0}")]
    NotConfigured(String),
    #[error("{var}={value:?} is not an email address")]
    BadSender { var: &'static str, value: String },
    #[error("cannot set up TLS for SMTP server {host}: {detail}")]
    Tls { host: String, detail: String },

    /// A field of `data` is wrong.
    #[error("{field}: {reason}")]
    Payload { field: String, reason: String },
    #[error("{what}: no value for {{{{{name}}}}} in variables")]
    MissingVariable { what: String, name: String },
    #[error("template: no {name}.txt or {name}.html in {}", dir.display())]
    UnknownTemplate { name: String, dir: PathBuf },
    #[error("cannot read template {}: {source}", path.display())]
    TemplateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template {} is larger than {limit} bytes", path.display())]
    TemplateTooLarge { path: PathBuf, limit: u64 },
    #[error("template {} is not UTF-8 text", path.display())]
    TemplateNotUtf8 { path: PathBuf },
    #[error("cannot build the message: {0}")]
    Build(String),

    /// A 5xx reply to the message (sender, recipient or content refused).
    #[error("SMTP server {server} refused the message: {detail}")]
    Rejected { server: String, detail: String },
    /// A 4xx reply: try later.
    #[error("SMTP server {server} deferred the message: {detail}")]
    Deferred { server: String, detail: String },
    #[error(
        "SMTP server {server} refused the login: {detail}; check SMTP_USERNAME and SMTP_PASSWORD"
    )]
    AuthRefused { server: String, detail: String },
    /// Connection, TLS, timeout or protocol trouble.
    #[error("cannot deliver to SMTP server {server}: {detail}")]
    Transport { server: String, detail: String },
    /// The server does not offer STARTTLS, which SMTP_TLS=starttls
    /// requires: a setting that is wrong, not a server that is busy.
    #[error(
        "SMTP server {server} does not offer STARTTLS, which SMTP_TLS=starttls requires; \
         set SMTP_TLS=tls if it speaks TLS from the first byte, or SMTP_TLS=none to send \
         in clear (on a trusted network only)"
    )]
    NoStartTls { server: String },
}

impl EmailError {
    /// Whether no later attempt of the same job can succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            EmailError::Payload { .. }
            | EmailError::MissingVariable { .. }
            | EmailError::UnknownTemplate { .. }
            | EmailError::TemplateTooLarge { .. }
            | EmailError::TemplateNotUtf8 { .. }
            | EmailError::Build(_)
            | EmailError::Rejected { .. }
            | EmailError::NoStartTls { .. } => true,
            // Setup errors are fixed by the operator, after which the job
            // goes through; a read error or a busy server may pass.
            EmailError::NotConfigured(_)
            | EmailError::BadSender { .. }
            | EmailError::Tls { .. }
            | EmailError::TemplateIo { .. }
            | EmailError::Deferred { .. }
            | EmailError::AuthRefused { .. }
            | EmailError::Transport { .. } => false,
        }
    }
}

impl From<EmailError> for JobError {
    fn from(e: EmailError) -> JobError {
        if e.is_permanent() {
            JobError::Permanent(e.to_string())
        } else {
            JobError::Retry(e.to_string())
        }
    }
}

/// The sender and the way to reach the server, present when SMTP is set up.
#[derive(Debug)]
struct Outbox {
    from: Mailbox,
    mailer: Mailer,
}

/// The `email` job type.
#[derive(Debug)]
pub struct EmailHandler {
    templates_dir: PathBuf,
    /// Templates as `validate` last read them.
    templates: template::Cache,
    /// `Err` holds why the handler cannot send, for `unconfigured` handlers.
    outbox: Result<Outbox, String>,
}

/// The registry entry for `smtp`: enabled when it is complete, else
/// disabled with the reason (e.g. "SMTP_HOST is not set").
pub fn registration(smtp: &SmtpConfig) -> Registration {
    match EmailHandler::new(smtp) {
        Ok(handler) => Registration::new(handler),
        Err(e) => {
            let reason = e.to_string();
            Registration::disabled(EmailHandler::unconfigured(smtp, reason.clone()), reason)
        }
    }
}

impl EmailHandler {
    /// A handler that sends through the server `smtp` names. Fails when the
    /// host or sender is missing or invalid, or TLS cannot be set up; the
    /// error names every such fault, not only the first.
    pub fn new(smtp: &SmtpConfig) -> Result<EmailHandler, EmailError> {
        let mut faults = Vec::new();
        if smtp.host.is_none() {
            faults.push(EmailError::NotConfigured(
                "SMTP_HOST is not set".to_string(),
            ));
        }
        let from = match smtp.from.as_deref() {
            None => {
                faults.push(EmailError::NotConfigured(
                    "MAIL_FROM (or SMTP_FROM_EMAIL) is not set".to_string(),
                ));
                None
            }
            Some(from) => match from.parse::<Mailbox>() {
                Ok(mailbox) => Some(mailbox),
                Err(_) => {
                    faults.push(EmailError::BadSender {
                        var: "MAIL_FROM",
                        value: from.to_string(),
                    });
                    None
                }
            },
        };
        // Checked with a stand-in host when SMTP_HOST is missing, so that a
        // username without a password is reported in the same breath.
        let mailer = Mailer::new(smtp, smtp.host.as_deref().unwrap_or("localhost"))
            .map_err(|e| faults.push(e))
            .ok();
        match (faults.len(), from, mailer) {
            (0, Some(from), Some(mailer)) => Ok(EmailHandler {
                templates_dir: smtp.templates_dir.clone(),
                templates: template::Cache::default(),
                outbox: Ok(Outbox { from, mailer }),
            }),
            (1, _, _) => Err(faults.remove(0)),
            _ => Err(EmailError::NotConfigured(
                faults
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// A handler that validates payloads but cannot send, for registering
    /// `email` as disabled; `reason` is what its runs answer.
    pub fn unconfigured(smtp: &SmtpConfig, reason: impl Into<String>) -> EmailHandler {
        EmailHandler {
            templates_dir: smtp.templates_dir.clone(),
            templates: template::Cache::default(),
            outbox: Err(reason.into()),
        }
    }

    /// A template job's template exists and every placeholder in it has a
    /// value. A template this process cannot read (permissions, I/O) is not
    /// judged here: the attempt that needs it reports the error.
    fn check_template(&self, job: &EmailJob) -> Result<(), EmailError> {
        let Body::Template(name) = &job.body else {
            return Ok(());
        };
        let found = match self.templates.get(&self.templates_dir, name) {
            Ok(found) => found,
            Err(EmailError::TemplateIo { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for (ext, source) in [("txt", &found.text), ("html", &found.html)] {
            let Some(source) = source else { continue };
            if let Some(missing) =
                template::placeholders(source).find(|n| job.variables.get(n).is_none())
            {
                return Err(EmailError::MissingVariable {
                    what: format!("template {name}.{ext}"),
                    name: missing.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Renders `job` into a message from `from`.
    async fn compose(&self, from: &Mailbox, job: &EmailJob) -> Result<Message, EmailError> {
        let (text_source, html_source, origin) = match &job.body {
            Body::Template(name) => {
                let t = template::load(&self.templates_dir, name).await?;
                (t.text, t.html, Some(name.as_str()))
            }
            Body::Inline { text, html } => (text.clone(), html.clone(), None),
        };
        let what = |ext: &str, inline: &str| match origin {
            Some(name) => format!("template {name}.{ext}"),
            None => inline.to_string(),
        };
        let vars = &job.variables;
        let subject = template::render("subject", &job.subject, vars, template::Escape::None)?;
        let text = text_source
            .map(|s| template::render(&what("txt", "text"), &s, vars, template::Escape::None))
            .transpose()?;
        let html = html_source
            .map(|s| template::render(&what("html", "html"), &s, vars, template::Escape::Html))
            .transpose()?;

        // A fresh Message-ID per attempt. One derived from the job id would
        // let mailbox providers drop a retry's duplicate, but job ids are
        // reused once rows are deleted, and a reused Message-ID would get a
        // genuinely new message dropped instead.
        let mut builder = Message::builder()
            .from(from.clone())
            .subject(one_line(&subject))
            .message_id(None);
        for mailbox in &job.to {
            builder = builder.to(mailbox.clone());
        }
        for mailbox in &job.cc {
            builder = builder.cc(mailbox.clone());
        }
        for mailbox in &job.bcc {
            builder = builder.bcc(mailbox.clone());
        }
        let built = match (text, html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (Some(text), None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            ),
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
            (None, None) => {
                return Err(EmailError::Payload {
                    field: "template".to_string(),
                    reason: "no body: neither text nor html was given".to_string(),
                });
            }
        };
        built.map_err(|e| EmailError::Build(e.to_string()))
    }
}

/// A subject is one header line: a variable holding a line break must not be
/// able to end it and start a header of its own.
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Why the template an email job's `data` names cannot be checked by this
/// process, if it cannot: `cronq check` runs as an operator who may not
/// read the daemon's templates folder, and says so instead of passing in
/// silence. `None` for inline bodies, and for templates it can read.
pub fn unreadable_template(templates_dir: &std::path::Path, data: &Value) -> Option<String> {
    let Ok(EmailJob {
        body: Body::Template(name),
        ..
    }) = EmailJob::parse(data)
    else {
        return None;
    };
    match template::load_now(templates_dir, &name) {
        Err(e @ EmailError::TemplateIo { .. }) => Some(format!(
            "template {name} was not checked: {e} (the daemon may still read it)"
        )),
        _ => None,
    }
}

/// `value` with the values of secret-looking keys (password, token, secret,
/// at any depth) replaced, for debug logging.
fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    let secret = ["password", "passwd", "token", "secret"]
                        .iter()
                        .any(|word| key.contains(word));
                    let v = if secret {
                        Value::String("<redacted>".to_string())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

#[async_trait::async_trait]
impl Handler for EmailHandler {
    fn job_type(&self) -> &str {
        "email"
    }

    fn description(&self) -> &str {
        "Sends an email from a template or inline text/html over SMTP"
    }

    fn validate(&self, data: &Value) -> Result<(), String> {
        let job = EmailJob::parse(data).map_err(|e| e.to_string())?;
        job.check_visible_placeholders()
            .and_then(|()| self.check_template(&job))
            .map_err(|e| e.to_string())
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        let email = EmailJob::parse(&job.data)?;
        let outbox = self
            .outbox
            .as_ref()
            .map_err(|reason| JobError::retry(format!("email is not set up: {reason}")))?;
        tracing::debug!(data = %redacted(&job.data), "composing email");
        let message = self.compose(&outbox.from, &email).await?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_string();
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        let recipients = to.len();
        outbox.mailer.send(message).await?;
        job.set_result(serde_json::json!({
            "message_id": message_id,
            "recipients": to,
            "server": outbox.mailer.server(),
        }));
        tracing::info!(
            server = outbox.mailer.server(),
            recipients,
            template = match &email.body {
                Body::Template(name) => name.as_str(),
                Body::Inline { .. } => "(inline)",
            },
            message_id,
            "email sent"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpTls;
    use serde_json::json;

    fn smtp(host: Option<&str>, from: Option<&str>) -> SmtpConfig {
        SmtpConfig {
            host: host.map(str::to_string),
            port: Some(2525),
            username: None,
            password: None,
            tls: SmtpTls::None,
            from: from.map(str::to_string),
            templates_dir: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn disabled_with_the_missing_setting_named() {
        let r = registration(&smtp(None, Some("a@example.com")));
        assert!(!r.enabled);
        assert_eq!(r.disabled_reason.as_deref(), Some("SMTP_HOST is not set"));
        let r = registration(&smtp(Some("localhost"), None));
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some("MAIL_FROM (or SMTP_FROM_EMAIL) is not set")
        );
        let r = registration(&smtp(Some("localhost"), Some("not an address")));
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some("MAIL_FROM=\"not an address\" is not an email address")
        );
        let mut s = smtp(Some("localhost"), Some("a@example.com"));
        s.username = Some("u".to_string());
        let r = registration(&s);
        assert!(
            r.disabled_reason
                .unwrap()
                .starts_with("SMTP_USERNAME is set")
        );
        let r = registration(&smtp(Some("localhost"), Some("Acme <a@example.com>")));
        assert!(r.enabled);
        assert_eq!(r.job_type(), "email");
    }

    #[test]
    fn a_disabled_handler_still_validates() {
        let h = EmailHandler::unconfigured(&smtp(None, None), "SMTP_HOST is not set");
        assert!(
            h.validate(&json!({"to": "a@example.com", "subject": "s", "text": "t"}))
                .is_ok()
        );
        assert_eq!(
            h.validate(&json!({"to": "x", "subject": "s", "text": "t"}))
                .unwrap_err(),
            "to: \"x\" is not an email address"
        );
    }

    #[test]
    fn permanence() {
        let permanent: JobError = EmailError::MissingVariable {
            what: "subject".to_string(),
            name: "x".to_string(),
        }
        .into();
        assert!(permanent.is_permanent());
        let retry: JobError = EmailError::Deferred {
            server: "s".to_string(),
            detail: "451".to_string(),
        }
        .into();
        assert!(!retry.is_permanent());
    }

    #[test]
    fn a_subject_stays_on_one_line() {
        assert_eq!(
            one_line("Hi\r\nBcc: x@example.com"),
            "Hi  Bcc: x@example.com"
        );
    }

    #[test]
    fn secret_keys_are_redacted() {
        let v = redacted(&json!({
            "to": "a@example.com",
            "variables": {"name": "n", "reset_token": "abc", "Password": "p", "list": [{"api_secret": 1}]}
        }));
        let text = v.to_string();
        for secret in ["abc", "\"p\"", ":1"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("\"name\":\"n\""), "{text}");
    }

    #[tokio::test]
    async fn composes_multipart_from_a_template_with_escaping_only_in_html() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.txt"), "Hello {{name}}").unwrap();
        std::fs::write(dir.path().join("w.html"), "<p>Hello {{ name }}</p>").unwrap();
        let mut s = smtp(Some("localhost"), Some("Acme <noreply@example.com>"));
        s.templates_dir = dir.path().to_path_buf();
        let h = EmailHandler::new(&s).unwrap();
        let job = EmailJob::parse(&json!({
            "to": "a@example.com", "subject": "Hi {{name}}", "template": "w",
            "variables": {"name": "<Tom & Jerry>"}
        }))
        .unwrap();
        let from = h.outbox.as_ref().unwrap().from.clone();
        let message = h.compose(&from, &job).await.unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Hello <Tom & Jerry>"), "{raw}");
        assert!(
            raw.contains("<p>Hello &lt;Tom &amp; Jerry&gt;</p>"),
            "{raw}"
        );
        assert!(raw.contains("Subject: Hi <Tom & Jerry>"), "{raw}");

        let job = EmailJob::parse(&json!({
            "to": "a@example.com", "subject": "Hi", "template": "w"
        }))
        .unwrap();
        let err = h.compose(&from, &job).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "template w.txt: no value for {{name}} in variables"
        );
        assert!(err.is_permanent());
    }
}
