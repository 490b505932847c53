//! The daemon's one pooled SMTP transport, and what its errors mean for a job.
//!
//! Two choices here a reader may question:
//!
//! - The lettre transport is built on first use, not in the constructor:
//!   lettre's pool spawns its idle-connection reaper onto the current tokio
//!   runtime the moment it is built, so building it in `EmailHandler::new`
//!   would tie construction to a runtime (and panic outside one). The
//!   settings are still checked, and TLS set up, in the constructor; only
//!   the pool waits for the first message. It is built once and shared by
//!   every job.
//! - Each send runs in its own task. The queue abandons a job by dropping its
//!   future at the timeout; dropping lettre's send half-way would hand a
//!   connection back to the pool mid-transaction, and the next job on it
//!   would stall inside DATA or meet "503 nested MAIL command", a 5xx that
//!   would bury it for nothing. A spawned send always finishes or fails on
//!   lettre's own command timeout, so pooled connections are only reused
//!   between transactions. The price: a message may still go out after its
//!   job was abandoned, and the retry sends it again (delivery is at least
//!   once anyway).

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::EmailError;
use crate::config::{SmtpConfig, SmtpTls};

/// Per SMTP command. Shorter than the default job timeout (30 s), so a
/// server that stops answering yields lettre's own "timed out" error (and a
/// retry) rather than an abandoned job.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Idle connections kept open. Sends beyond this many at once open extra
/// connections that are closed after use.
pub const POOL_MAX_IDLE: u32 = 10;

/// Reply codes that mean "these credentials, or their absence, are wrong":
/// 530 authentication required, 534 mechanism too weak, 535 credentials
/// invalid, 538 encryption required. They are 5xx, but they say nothing
/// about the message: once the operator fixes SMTP_USERNAME/SMTP_PASSWORD
/// every such job would go through, so they are retried, not buried.
const AUTH_CODES: &[u16] = &[530, 534, 535, 538];

/// The pooled transport and what is needed to describe its failures safely.
pub struct Mailer {
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    /// `host:port`, for messages.
    server: String,
    tls: SmtpTls,
    /// Forms of the secret that must never appear in an error message: the
    /// password, and its base64 forms as sent by AUTH PLAIN and AUTH LOGIN
    /// (a server may echo a refused command back in its reply).
    secrets: Vec<String>,
}

impl Mailer {
    /// Checks the settings and prepares TLS; `host` must be set.
    pub fn new(smtp: &SmtpConfig, host: &str) -> Result<Mailer, EmailError> {
        let port = smtp.port.unwrap_or(match smtp.tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        });
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_parameters(host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(POOL_MAX_IDLE));

        let mut secrets = Vec::new();
        match (&smtp.username, &smtp.password) {
            (Some(username), Some(password)) => {
                builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
                if !password.is_empty() {
                    secrets.push(BASE64.encode(format!("\0{username}\0{password}")));
                    secrets.push(BASE64.encode(password));
                    secrets.push(password.clone());
                }
            }
            (Some(_), None) => {
                return Err(EmailError::NotConfigured(
                    "SMTP_USERNAME is set but SMTP_PASSWORD (or the smtp_password credential) is not"
                        .to_string(),
                ));
            }
            (None, _) => {}
        }

        Ok(Mailer {
            builder,
            transport: OnceLock::new(),
            server: format!("{host}:{port}"),
            tls: smtp.tls,
            secrets,
        })
    }

    /// `host:port` of the SMTP server.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }

    /// Sends one message; see the module notes for why it runs in a task.
    pub async fn send(&self, message: Message) -> Result<(), EmailError> {
        // A cheap clone: the transport is a handle on the shared pool.
        let transport = self.transport().clone();
        let sent = tokio::spawn(async move { transport.send(message).await }).await;
        match sent {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&e)),
            Err(join) => Err(EmailError::Transport {
                server: self.server.clone(),
                detail: format!("the send task failed: {join}"),
            }),
        }
    }

    /// Sorts a lettre error into permanent, deferred, authentication and
    /// transport failures, with any trace of the password removed.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> EmailError {
        let server = self.server.clone();
        let detail = self.scrub(e.to_string());
        // lettre has no error kind of its own for this; its client error
        // says "STARTTLS is not supported on this server". Retrying cannot
        // help: the server answered, and said it will not encrypt.
        if self.tls == SmtpTls::StartTls && e.is_client() && detail.contains("STARTTLS") {
            return EmailError::NoStartTls { server };
        }
        match e.status().map(u16::from) {
            Some(code) if AUTH_CODES.contains(&code) => EmailError::AuthRefused { server, detail },
            Some(_) if e.is_permanent() => EmailError::Rejected { server, detail },
            Some(_) => EmailError::Deferred { server, detail },
            None => EmailError::Transport { server, detail },
        }
    }

    fn scrub(&self, mut text: String) -> String {
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, EmailError> {
    TlsParameters::new(host.to_string()).map_err(|e| EmailError::Tls {
        host: host.to_string(),
        detail: e.to_string(),
    })
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the builder holds the credentials.
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}
