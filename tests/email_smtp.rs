//! The `email` handler against a real SMTP server (aiosmtpd) on loopback:
//! what arrives, how refusals map to retry or bury, the connection pool,
//! AUTH, and that the password never reaches a log line; and through the
//! real daemon and CLI, what is refused before a job is stored (a template
//! that does not exist, a variable it needs that is not given) and how the
//! daemon reports its SMTP settings.

#[path = "support/smtp.rs"]
#[allow(dead_code)]
mod smtp;

#[path = "support/daemon.rs"]
mod daemon;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cronq::config::{SmtpConfig, SmtpTls};
use cronq::handlers::email::EmailHandler;
use cronq::{Handler, JobContext, JobError};
use serde_json::{Value, json};
use smtp::SmtpServer;
use tokio_util::sync::CancellationToken;

const FROM: &str = "Cronq Test <cronq@example.com>";
const PASSWORD: &str = "S3cr3t-Pa55w0rd";

/// Starts a server or skips the calling test (loudly) when none can run.
macro_rules! server_or_skip {
    ($name:expr, $options:expr) => {
        match SmtpServer::start($options) {
            Some(server) => server,
            None => {
                smtp::skip($name);
                return;
            }
        }
    };
}

fn shipped_templates() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/templates")
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: Some("127.0.0.1".to_string()),
        port: Some(port),
        username: None,
        password: None,
        tls: SmtpTls::None,
        from: Some(FROM.to_string()),
        templates_dir: shipped_templates(),
    }
}

fn handler(port: u16) -> EmailHandler {
    EmailHandler::new(&config(port)).expect("a complete SMTP configuration")
}

fn job(data: Value) -> JobContext {
    JobContext {
        id: "job-1".to_string(),
        name: "test".to_string(),
        job_type: "email".to_string(),
        data,
        attempt: 1,
        max_attempts: 4,
        timeout: Duration::from_secs(30),
        cron_id: None,
        limits: Default::default(),
        shutdown: CancellationToken::new(),
        cancel: CancellationToken::new(),
        reporter: Default::default(),
        result: Default::default(),
    }
}

fn welcome(to: Value) -> Value {
    json!({
        "to": to,
        "subject": "Welcome {{name}}!",
        "template": "welcome_email",
        "variables": {"name": "Ann <&> O'Neil", "company": "Acme & \"Co\""}
    })
}

#[tokio::test]
async fn a_template_arrives_with_headers_envelope_and_both_bodies() {
    let server = server_or_skip!("a_template_arrives", &[]);
    let mut data = welcome(json!(["Ann <ann@example.com>", "bob@example.com"]));
    data["cc"] = json!("carol@example.com");
    data["bcc"] = json!(["dave@example.com", "Erin <erin@example.com>"]);
    let h = handler(server.port);
    h.validate(&data).expect("valid");
    h.run(job(data)).await.expect("sent");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "cronq@example.com");
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "ann@example.com",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
            "erin@example.com"
        ]
    );
    assert_eq!(m.header("From"), FROM);
    assert_eq!(m.header("To"), "Ann <ann@example.com>, bob@example.com");
    assert_eq!(m.header("Cc"), "carol@example.com");
    assert!(m.header_all("Bcc").is_empty(), "{:?}", m.headers);
    assert!(!m.raw.contains("dave@example.com"), "{}", m.raw);
    assert!(!m.raw.contains("erin@example.com"), "{}", m.raw);
    // The subject gets values verbatim, as the text body does.
    assert_eq!(m.header("Subject"), "Welcome Ann <&> O'Neil!");
    assert!(!m.header("Message-ID").is_empty());

    assert_eq!(m.content_type, "multipart/alternative");
    let text = m.body("text/plain");
    assert!(text.starts_with("Hello Ann <&> O'Neil,\n"), "{text}");
    assert!(text.contains("Welcome to Acme & \"Co\"!"), "{text}");
    let html = m.body("text/html");
    assert!(
        html.contains("<p>Hello Ann &lt;&amp;&gt; O&#39;Neil,</p>"),
        "{html}"
    );
    assert!(
        html.contains("<strong>Acme &amp; &quot;Co&quot;</strong>"),
        "{html}"
    );
    assert!(html.contains("<title>Welcome to Acme &amp;"), "{html}");
}

#[tokio::test]
async fn inline_bodies_give_single_parts_or_alternatives() {
    let server = server_or_skip!("inline_bodies", &[]);
    let h = handler(server.port);
    let base = json!({"to": "a@example.com", "subject": "n={{n}}", "variables": {"n": 42}});

    let mut text_only = base.clone();
    text_only["text"] = json!("count {{ n }} <b>");
    let mut html_only = base.clone();
    html_only["html"] = json!("<i>{{n}}</i>");
    let mut both = base.clone();
    both["text"] = json!("t{{n}}");
    both["html"] = json!("<p>h{{n}}</p>");
    for data in [text_only, html_only, both] {
        h.run(job(data)).await.expect("sent");
    }

    let m = server.messages();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].content_type, "text/plain");
    assert_eq!(m[0].body("text/plain").trim_end(), "count 42 <b>");
    assert_eq!(m[0].header("Subject"), "n=42");
    assert_eq!(m[1].content_type, "text/html");
    assert_eq!(m[1].body("text/html").trim_end(), "<i>42</i>");
    assert_eq!(m[2].content_type, "multipart/alternative");
    assert_eq!(m[2].body("text/plain").trim_end(), "t42");
    assert_eq!(m[2].body("text/html").trim_end(), "<p>h42</p>");
}

#[tokio::test]
async fn a_line_break_in_a_subject_variable_cannot_add_a_header() {
    let server = server_or_skip!("subject_injection", &[]);
    let data = json!({
        "to": "a@example.com",
        "subject": "Hi {{name}}",
        "text": "t",
        "variables": {"name": "x\r\nBcc: evil@example.com"}
    });
    handler(server.port).run(job(data)).await.expect("sent");
    let m = &server.messages()[0];
    assert_eq!(m.rcpt_tos, ["a@example.com"]);
    assert!(m.header_all("Bcc").is_empty(), "{:?}", m.headers);
    assert!(m.header("Subject").starts_with("Hi x"), "{:?}", m.headers);
}

async fn run_against(options: &[&str], name: &str) -> Option<JobError> {
    let server = SmtpServer::start(options).or_else(|| {
        smtp::skip(name);
        None
    })?;
    let result = handler(server.port)
        .run(job(welcome(json!("a@example.com"))))
        .await;
    assert!(server.messages().is_empty());
    Some(result.expect_err("the server refused"))
}

#[tokio::test]
async fn a_550_to_rcpt_is_permanent() {
    let Some(err) = run_against(&["--rcpt-reply", "550 5.1.1 no such user"], "a_550_to_rcpt").await
    else {
        return;
    };
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.message().contains("550"), "{err}");
    assert!(err.message().contains("no such user"), "{err}");
}

#[tokio::test]
async fn a_550_to_data_is_permanent() {
    let Some(err) = run_against(
        &["--data-reply", "550 5.7.1 content rejected"],
        "a_550_to_data",
    )
    .await
    else {
        return;
    };
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.message().contains("content rejected"), "{err}");
}

#[tokio::test]
async fn a_451_is_retried() {
    for (stage, name) in [
        ("--rcpt-reply", "a_451_to_rcpt"),
        ("--data-reply", "a_451_to_data"),
    ] {
        let Some(err) = run_against(&[stage, "451 4.3.0 try again later"], name).await else {
            return;
        };
        assert!(!err.is_permanent(), "{stage}: {err:?}");
        assert!(err.message().contains("451"), "{stage}: {err}");
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_retried() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let err = handler(port)
        .run(job(welcome(json!("a@example.com"))))
        .await
        .expect_err("nothing listens");
    assert!(!err.is_permanent(), "{err:?}");
    assert!(
        err.message()
            .starts_with(&format!("cannot deliver to SMTP server 127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn tls_settings_are_never_downgraded() {
    // The test server speaks plain SMTP only: with starttls or tls set, the
    // handler must refuse to send in clear. A server that answers without
    // offering STARTTLS has said all there is to say: that is a wrong
    // setting, permanent. A failed TLS handshake is retried (the server may
    // be down or half-deployed).
    let server = server_or_skip!("tls_settings", &[]);
    for (tls, expected, permanent) in [
        (
            SmtpTls::StartTls,
            "does not offer STARTTLS, which SMTP_TLS=starttls requires",
            true,
        ),
        (SmtpTls::Tls, "Connection error", false),
    ] {
        let h = EmailHandler::new(&SmtpConfig {
            tls,
            ..config(server.port)
        })
        .expect("TLS parameters for 127.0.0.1");
        let err = h
            .run(job(welcome(json!("a@example.com"))))
            .await
            .expect_err("no TLS offered");
        assert_eq!(err.is_permanent(), permanent, "{tls:?}: {err:?}");
        assert!(err.message().contains(expected), "{tls:?}: {err}");
    }
    assert!(server.messages().is_empty());
}

/// The daemon's environment for SMTP through `server` (or a closed port).
fn smtp_env(port: u16, tls: &str) -> Vec<(String, String)> {
    [
        ("SMTP_HOST", "127.0.0.1".to_string()),
        ("SMTP_PORT", port.to_string()),
        ("SMTP_TLS", tls.to_string()),
        ("MAIL_FROM", FROM.to_string()),
        (
            "EMAIL_TEMPLATES_DIR",
            shipped_templates().display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn start_daemon(env: &[(String, String)]) -> daemon::Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    daemon::Daemon::start(&env)
}

#[test]
fn a_server_without_starttls_kills_the_job_at_once_with_the_reason() {
    let Some(server) = SmtpServer::start(&[]) else {
        smtp::skip("a_server_without_starttls");
        return;
    };
    let d = start_daemon(&smtp_env(server.port, "starttls"));
    let answer = d.ok(
        json!({"cmd": "enqueue", "name": "mail", "payload": {"type": "email",
        "data": {"to": "a@example.com", "subject": "s", "text": "t"},
        "options": {"retry_count": 3}}}),
    );
    let id = answer["job"]["id"].as_str().unwrap().to_string();
    let dead = d.until(Duration::from_secs(20), "the job to die", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    assert_eq!(
        dead["attempts"], 1,
        "no retries for a wrong setting: {dead}"
    );
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(error.contains("SMTP_TLS"), "{error}");
    assert!(server.messages().is_empty());
}

#[test]
fn enqueue_refuses_a_missing_template_and_a_missing_variable() {
    // A closed port: nothing is sent, the checks come before any delivery.
    let d = start_daemon(&smtp_env(1, "none"));
    let refused = |data: Value| {
        let a = d.request(json!({"cmd": "enqueue", "name": "mail",
            "payload": {"type": "email", "data": data}}));
        assert_eq!(a["error"]["code"], "bad_request", "{a}");
        a["error"]["message"].as_str().unwrap().to_string()
    };
    let message =
        refused(json!({"to": "a@example.com", "subject": "s", "template": "no_such_template"}));
    assert!(
        message.starts_with(
            "payload.data: template: no no_such_template.txt or no_such_template.html in "
        ),
        "{message}"
    );
    let message = refused(json!({"to": "a@example.com", "subject": "s",
        "template": "welcome_email", "variables": {"name": "Ann"}}));
    assert_eq!(
        message,
        "payload.data: template welcome_email.txt: no value for {{company}} in variables"
    );
    // In a batch, the job at fault is named and nothing is stored.
    let a = d.request(json!({"cmd": "enqueue", "jobs": [
        {"name": "ok", "payload": {"type": "email", "data": welcome(json!("a@example.com"))}},
        {"name": "bad", "payload": {"type": "email", "data": {"to": "a@example.com", "subject": "s", "template": "nope"}}}]}));
    assert_eq!(a["error"]["code"], "bad_request", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].payload.data: template: no nope.txt"),
        "{a}"
    );
    let listed = d.ok(json!({"cmd": "jobs"}));
    assert_eq!(listed["jobs"], json!([]), "all or nothing: {listed}");
    // Everything given: stored.
    d.ok(json!({"cmd": "enqueue", "name": "mail",
        "payload": {"type": "email", "data": welcome(json!("a@example.com"))}}));
}

#[test]
fn a_template_that_cannot_be_read_here_is_left_to_the_run() {
    // Not "does not exist": the templates folder is not a folder (root
    // reads every file, so permissions cannot show it). The enqueue cannot
    // judge, so it does not refuse; the run reports what it finds.
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("templates");
    std::fs::write(&not_a_dir, "a file").unwrap();
    let h = EmailHandler::new(&SmtpConfig {
        templates_dir: not_a_dir,
        ..config(1)
    })
    .unwrap();
    assert_eq!(h.validate(&welcome(json!("a@example.com"))), Ok(()));
}

#[test]
fn cronq_check_refuses_email_crons_with_a_missing_template_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    let crons = dir.path().join("crons.toml");
    std::fs::write(
        &crons,
        "[cron.good]\nschedule = \"@daily\"\ntype = \"email\"\n\
         data = { to = \"a@example.com\", subject = \"s\", template = \"welcome_email\", variables = { name = \"n\", company = \"c\" } }\n\n\
         [cron.no_template]\nschedule = \"@daily\"\ntype = \"email\"\n\
         data = { to = \"a@example.com\", subject = \"s\", template = \"no_such_template\" }\n\n\
         [cron.no_company]\nschedule = \"@daily\"\ntype = \"email\"\n\
         data = { to = \"a@example.com\", subject = \"s\", template = \"welcome_email\", variables = { name = \"n\" } }\n",
    )
    .unwrap();
    let out = std::process::Command::new(daemon::BIN)
        .arg("check")
        .arg(&crons)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(smtp_env(1, "none"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "cron.no_template.data: template: no no_such_template.txt or no_such_template.html"
        ),
        "{text}"
    );
    assert!(
        text.contains("cron.no_company.data: template welcome_email.txt: no value for {{company}}"),
        "{text}"
    );
    assert!(!text.contains("cron.good"), "{text}");

    // Templates this user cannot read are not judged, and it says so.
    let not_a_dir = dir.path().join("templates");
    std::fs::write(&not_a_dir, "a file").unwrap();
    std::fs::write(
        &crons,
        "[cron.good]\nschedule = \"@daily\"\ntype = \"email\"\n\
         data = { to = \"a@example.com\", subject = \"s\", template = \"welcome_email\" }\n",
    )
    .unwrap();
    let out = std::process::Command::new(daemon::BIN)
        .arg("check")
        .arg(&crons)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(smtp_env(1, "none"))
        .env("EMAIL_TEMPLATES_DIR", &not_a_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: cron.good: template welcome_email was not checked"),
        "{stderr}"
    );
}

#[test]
fn start_up_names_every_smtp_setting_at_fault_at_once() {
    // Values the daemon cannot start with: one message names them all.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(daemon::BIN)
        .arg("daemon")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SMTP_PORT", "0")
        .env("SMTP_TLS", "ssl")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SMTP_PORT=\"0\" is invalid")
            && stderr.contains("SMTP_TLS=\"ssl\" is invalid"),
        "{stderr}"
    );
    // Settings that leave email off: the handler's reason names them all.
    let d = daemon::Daemon::start(&[("SMTP_USERNAME", "cronq")]);
    let status = d.ok(json!({"cmd": "status"}));
    let email = status["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["type"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["enabled"], false, "{email}");
    let reason = email["reason"].as_str().unwrap();
    for missing in [
        "SMTP_HOST is not set",
        "MAIL_FROM (or SMTP_FROM_EMAIL) is not set",
        "SMTP_USERNAME is set but SMTP_PASSWORD",
    ] {
        assert!(reason.contains(missing), "{missing}: {reason}");
    }
    assert!(
        d.log().contains(reason),
        "the start-up log says it too:\n{}",
        d.log()
    );
}

#[tokio::test]
async fn the_pool_reuses_connections() {
    let server = server_or_skip!("the_pool_reuses_connections", &[]);
    let h = handler(server.port);
    for i in 0..5 {
        h.run(job(
            json!({"to": "a@example.com", "subject": format!("n{i}"), "text": "t"}),
        ))
        .await
        .expect("sent");
        // lettre parks a connection from a task spawned when the send ends;
        // let it run before the next send looks in the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.messages().len(), 5);
    assert_eq!(
        server.connections(),
        1,
        "5 sends should share one connection"
    );
}

#[tokio::test]
async fn problems_with_the_job_itself_are_permanent() {
    // None of these reach the server, so no server is needed.
    let h = handler(1);
    let cases = [
        (
            json!({"to": "a@example.com", "subject": "Hi {{who}}", "text": "t"}),
            "subject: no value for {{who}} in variables",
        ),
        (
            json!({"to": "a@example.com", "subject": "s", "template": "welcome_email",
                   "variables": {"name": "n"}}),
            "template welcome_email.txt: no value for {{company}} in variables",
        ),
        (
            json!({"to": "a@example.com", "subject": "s", "template": "no_such_template"}),
            "template: no no_such_template.txt or no_such_template.html in ",
        ),
        (
            // As if inserted straight into the table, past validate.
            json!({"to": ["a@example.com", "bob@"], "subject": "s", "text": "t"}),
            "to[1]: \"bob@\" is not an email address",
        ),
        (
            json!({"to": "a@example.com", "subject": "s", "template": "../../etc/passwd"}),
            "template: \"../../etc/passwd\" is not a template name",
        ),
    ];
    for (data, expected) in cases {
        let err = h.run(job(data.clone())).await.expect_err("refused");
        assert!(err.is_permanent(), "{data}: {err:?}");
        assert!(err.message().starts_with(expected), "{data}: {err}");
    }
}

#[test]
fn validation_names_the_field() {
    let h = handler(1);
    assert_eq!(
        h.validate(&json!({"to": ["a@example.com", "bob@"], "subject": "s", "text": "t"})),
        Err("to[1]: \"bob@\" is not an email address".to_string())
    );
    assert_eq!(
        h.validate(&json!({"to": "a@example.com", "subject": "s"})),
        Err("template: required, unless the body is given inline as text and/or html".to_string())
    );
    assert_eq!(
        h.validate(&json!({"to": "a@example.com", "subject": "Hi {{ name }}", "text": "t"})),
        Err("subject: no value for {{name}} in variables".to_string())
    );
    // A template's placeholders are checked against the file as it is now.
    assert_eq!(h.validate(&welcome(json!("a@example.com"))), Ok(()));
    let mut no_company = welcome(json!("a@example.com"));
    no_company["variables"] = json!({"name": "n"});
    assert_eq!(
        h.validate(&no_company),
        Err("template welcome_email.txt: no value for {{company}} in variables".to_string())
    );
    assert_eq!(
        h.validate(&json!({"to": "a@example.com", "subject": "s", "template": "nope"})),
        Err(format!(
            "template: no nope.txt or nope.html in {}",
            shipped_templates().display()
        ))
    );
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn auth_config(port: u16, password: &str) -> SmtpConfig {
    SmtpConfig {
        username: Some("cronq".to_string()),
        password: Some(password.to_string()),
        ..config(port)
    }
}

#[tokio::test]
async fn auth_on_a_plain_connection_and_the_password_is_never_logged() {
    // tracing caches each callsite's interest globally: another test of this
    // binary reaching "email sent" on a thread without a subscriber while
    // this one runs can cache "never" and hide the line from the capture
    // (seen in about one run in three). So the test body runs alone, in a
    // child process of this same test binary.
    const ALONE: &str = "CRONQ_TEST_EMAIL_LOG_ALONE";
    if std::env::var_os(ALONE).is_none() {
        let name = "auth_on_a_plain_connection_and_the_password_is_never_logged";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("1 passed") || text.contains("SKIPPED"),
            "{text}"
        );
        return;
    }
    let auth = format!("cronq:{PASSWORD}");
    let server = server_or_skip!("auth_and_password", &["--auth", &auth]);
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    // The test runtime is single-threaded, so lettre's tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let data = json!({"to": "a@example.com", "subject": "s", "text": "t",
                      "variables": {"api_token": "tok-123"}});
    let h = EmailHandler::new(&auth_config(server.port, PASSWORD)).expect("configured");
    h.run(job(data.clone())).await.expect("sent after AUTH");
    let m = server.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].auth_login.as_deref(), Some("cronq"));

    // A wrong password: the server says 535, the job is retried (fixing the
    // setting fixes the job), and the error does not carry the password.
    let wrong = "Wr0ng-Pa55w0rd";
    let bad = EmailHandler::new(&auth_config(server.port, wrong)).expect("configured");
    let err = bad.run(job(data)).await.expect_err("login refused");
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().contains("535"), "{err}");
    assert!(err.message().contains("SMTP_PASSWORD"), "{err}");
    assert!(!err.message().contains(wrong), "{err}");
    assert_eq!(server.messages().len(), 1);

    let logged = logs.text();
    assert!(logged.contains("email sent"), "the capture works: {logged}");
    assert!(
        logged.contains("TRACE") || logged.contains("DEBUG"),
        "{logged}"
    );
    for secret in [PASSWORD, wrong, "tok-123"] {
        assert!(!logged.contains(secret), "{secret} was logged: {logged}");
    }
    for form in [format!("\0cronq\0{PASSWORD}"), PASSWORD.to_string()] {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(form);
        assert!(!logged.contains(&encoded), "base64 of the password logged");
    }
}
