//! The built-in handlers through the real daemon: a job enqueued on the
//! socket reaches a real SMTP server on loopback, and real files under
//! DATA_DIR. (tests/email_smtp.rs and tests/data_processing.rs test the
//! handlers' details; these prove the daemon wires them up.)

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::time::Duration;

use daemon::Daemon;
use serde_json::json;

const PASSWORD: &str = "Daemon-S3cret-Pa55";

#[test]
fn an_email_job_arrives_and_the_password_is_never_logged() {
    let auth = format!("cronq:{PASSWORD}");
    let Some(server) = smtp::SmtpServer::start(&["--auth", &auth]) else {
        smtp::skip("an_email_job_arrives_and_the_password_is_never_logged");
        return;
    };
    let port = server.port.to_string();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/templates");
    let d = Daemon::start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "none"),
        ("SMTP_USERNAME", "cronq"),
        ("SMTP_PASSWORD", PASSWORD),
        ("MAIL_FROM", "Cronq <cronq@example.com>"),
        ("EMAIL_TEMPLATES_DIR", templates),
        ("LOG_LEVEL", "trace"),
    ]);
    let id = d.enqueue(
        "email",
        json!({"to": "ada@example.com", "subject": "Welcome, {{name}}", "template": "welcome_email",
               "variables": {"name": "Ada", "company": "Example & Co"}}),
    );
    d.until(Duration::from_secs(20), "the email job to finish", |d| {
        d.job(&id).is_none().then_some(())
    });
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.rcpt_tos, vec!["ada@example.com".to_string()]);
    assert_eq!(m.header("Subject"), "Welcome, Ada");
    assert!(m.body("text/plain").contains("Ada"));
    assert!(
        m.body("text/html").contains("Example &amp; Co"),
        "{}",
        m.body("text/html")
    );
    let log = d.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"));
    assert!(
        !log.contains(PASSWORD),
        "the SMTP password appears in the log"
    );

    // A bad address is refused at enqueue, naming the field.
    let a = d.request(json!({"cmd": "enqueue", "name": "x", "payload": {"type": "email", "data": {"to": "not an address", "subject": "s", "text": "t"}}}));
    assert_eq!(a["error"]["code"], "bad_request", "{a}");
    assert!(
        a["error"]["message"].as_str().unwrap().contains("to"),
        "{a}"
    );
}

#[test]
fn a_data_job_imports_then_exports_real_files() {
    let d = Daemon::start(&[]);
    let data_dir = d.dir.join("cronq-data/data");
    std::fs::create_dir_all(data_dir.join("in")).unwrap();
    std::fs::write(
        data_dir.join("in/users.csv"),
        "id,name\n1,\"Ada, Countess\"\n2,Grace\n",
    )
    .unwrap();
    let import = d.enqueue(
        "data_processing",
        json!({"operation": "import", "source": "file:in/users.csv", "target": "table:users"}),
    );
    d.until(Duration::from_secs(20), "the import", |d| {
        d.job(&import).is_none().then_some(())
    });
    let export = d.enqueue(
        "data_processing",
        json!({"operation": "export", "source": "table:users", "target": "file:exports/users.jsonl"}),
    );
    d.until(Duration::from_secs(20), "the export", |d| {
        d.job(&export).is_none().then_some(())
    });
    let out = std::fs::read_to_string(data_dir.join("exports/users.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("Ada, Countess"), "{out}");

    let a = d.request(
        json!({"cmd": "enqueue", "name": "x", "payload": {"type": "data_processing",
        "data": {"operation": "export", "source": "table:users", "target": "file:../escape.csv"}}}),
    );
    assert_eq!(a["error"]["code"], "bad_request", "{a}");
}
