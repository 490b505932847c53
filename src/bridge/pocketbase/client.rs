//! A small PocketBase REST client: superuser login and its refresh, record
//! listing, creation and deletion, a collection's fields, and the realtime
//! stream. hyper over rustls (ring) with the system's roots, no OpenSSL.
//!
//! Design choice: one token per client, taken on first use and renewed
//! with `auth-refresh` once it is [`REFRESH_AFTER`] old (a superuser's
//! token lasts a day by default); any 401 or 403 drops it and logs in
//! again once, since PocketBase answers a stale token like a stranger.
//! The password is only ever in the login body, never in a message.

use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::sse::Realtime;
use crate::config::PocketBaseConfig;

/// How long one request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read, a page of records included.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// A token older than this is refreshed before its next use.
pub const REFRESH_AFTER: Duration = Duration::from_secs(30 * 60);

/// Why talking to PocketBase failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PbError {
    #[error("cannot reach PocketBase at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("PocketBase at {url} did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("PocketBase refused the superuser login of {email}: {message}")]
    Login { email: String, message: String },
    #[error("PocketBase answered {method} {path} with {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("PocketBase's answer to {path} is not what cronq expects: {reason}")]
    Answer { path: String, reason: String },
    #[error("cannot set up TLS for PocketBase: {0}")]
    Tls(String),
}

impl PbError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            PbError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

struct Token {
    value: String,
    taken: Instant,
}

/// A client of one PocketBase, logged in as a superuser.
pub struct Client {
    http: Hyper<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The configured URL, its path ending in `/`.
    base: url::Url,
    email: String,
    password: String,
    token: Mutex<Option<Token>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.base.as_str())
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: &PocketBaseConfig) -> Result<Client, PbError> {
        let tls = tls_config()?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http = Hyper::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Client {
            http,
            base,
            email: config.email.clone(),
            password: config.password.clone(),
            token: Mutex::new(None),
        })
    }

    /// The configured URL, for messages.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Logs in now (or refreshes a token that is due), so that a wrong
    /// password shows at once rather than at the first record.
    pub async fn authenticate(&self) -> Result<String, PbError> {
        let mut token = self.token.lock().await;
        if let Some(t) = token.as_ref()
            && t.taken.elapsed() < REFRESH_AFTER
        {
            return Ok(t.value.clone());
        }
        let refreshed = match token.as_ref() {
            Some(t) => self.refresh(&t.value).await.ok(),
            None => None,
        };
        let value = match refreshed {
            Some(value) => value,
            None => self.login().await?,
        };
        *token = Some(Token {
            value: value.clone(),
            taken: Instant::now(),
        });
        Ok(value)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn login(&self) -> Result<String, PbError> {
        let path = "api/collections/_superusers/auth-with-password";
        let body = json!({"identity": self.email, "password": self.password});
        let (status, answer) = self.send(Method::POST, path, Some(&body), None).await?;
        if !status.is_success() {
            return Err(PbError::Login {
                email: self.email.clone(),
                message: format!("{status}: {}", message_of(&answer)),
            });
        }
        token_in(path, &parse_json(path, &answer)?)
    }

    async fn refresh(&self, token: &str) -> Result<String, PbError> {
        let path = "api/collections/_superusers/auth-refresh";
        let answer = self.expect(Method::POST, path, None, Some(token)).await?;
        token_in(path, &answer)
    }

    /// A request with the superuser's token; on 401 or 403, once more
    /// after a fresh login. Returns the status and the body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), PbError> {
        let token = self.authenticate().await?;
        let (status, answer) = self.send(method.clone(), path, body, Some(&token)).await?;
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return Ok((status, answer));
        }
        self.forget_token().await;
        let token = self.authenticate().await?;
        self.send(method, path, body, Some(&token)).await
    }

    /// Like [`Client::call`], but any status but 2xx is an error; the body
    /// parsed as JSON (null when empty).
    pub async fn call_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PbError> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        check(status, &method, path, &answer)?;
        parse_json(path, &answer)
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Value, PbError> {
        let (status, answer) = self.send(method.clone(), path, body, token).await?;
        check(status, &method, path, &answer)?;
        parse_json(path, &answer)
    }

    /// One page of a collection's records: `sort` and `filter` as
    /// PocketBase reads them, without counting the total.
    pub async fn list(
        &self,
        collection: &str,
        filter: Option<&str>,
        sort: &str,
        per_page: usize,
    ) -> Result<Vec<Value>, PbError> {
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("perPage", &per_page.to_string());
            query.append_pair("sort", sort);
            query.append_pair("skipTotal", "1");
            if let Some(filter) = filter {
                query.append_pair("filter", filter);
            }
            query.finish()
        };
        let path = format!("api/collections/{collection}/records?{query}");
        let page = self.call_ok(Method::GET, &path, None).await?;
        match page.get("items") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(PbError::Answer {
                path: format!("api/collections/{collection}/records"),
                reason: "no items list in the page".into(),
            }),
        }
    }

    /// Creates a record; returns it as stored.
    pub async fn create(&self, collection: &str, record: &Value) -> Result<Value, PbError> {
        let path = format!("api/collections/{collection}/records");
        self.call_ok(Method::POST, &path, Some(record)).await
    }

    /// Deletes a record; false when it was already gone.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<bool, PbError> {
        let path = format!("api/collections/{collection}/records/{id}");
        let (status, answer) = self.call(Method::DELETE, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check(status, &Method::DELETE, &path, &answer)?;
        Ok(true)
    }

    /// The names of a collection's fields that its records show, in the
    /// collection's order (hidden fields and passwords left out).
    pub async fn fields(&self, collection: &str) -> Result<Vec<String>, PbError> {
        let path = format!("api/collections/{collection}");
        let definition = self.call_ok(Method::GET, &path, None).await?;
        let Some(fields) = definition.get("fields").and_then(Value::as_array) else {
            return Err(PbError::Answer {
                path,
                reason: "no fields list in the collection".into(),
            });
        };
        Ok(fields
            .iter()
            .filter(|f| f.get("hidden") != Some(&Value::Bool(true)))
            .filter(|f| f.get("type").and_then(Value::as_str) != Some("password"))
            .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// Opens the realtime stream and reads its first event, which names
    /// the connection's client id.
    pub async fn realtime(&self) -> Result<Realtime, PbError> {
        let path = "api/realtime";
        let uri = self.uri(path)?;
        let request = Request::get(uri)
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))
            .map_err(|e| self.unreachable(e.to_string()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.unreachable(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PbError::Status {
                method: "GET".into(),
                path: path.into(),
                status: status.as_u16(),
                message: status.to_string(),
            });
        }
        Realtime::open(response.into_body(), self.url()).await
    }

    /// Subscribes the realtime connection `client_id` to `topics`, with
    /// the superuser's token (so records the rules hide are sent too).
    pub async fn subscribe(&self, client_id: &str, topics: &[&str]) -> Result<(), PbError> {
        let body = json!({"clientId": client_id, "subscriptions": topics});
        self.call_ok(Method::POST, "api/realtime", Some(&body))
            .await
            .map(|_| ())
    }

    fn uri(&self, path: &str) -> Result<http::Uri, PbError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| self.unreachable(format!("bad request path {path:?}: {e}")))?;
        url.as_str()
            .parse()
            .map_err(|e| self.unreachable(format!("bad request URL: {e}")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<(StatusCode, Bytes), PbError> {
        let mut request = Request::builder().method(method).uri(self.uri(path)?);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.unreachable(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.unreachable(error_chain(&e)))?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| self.unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, answer))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.timeout())?
    }

    fn unreachable(&self, reason: String) -> PbError {
        PbError::Unreachable {
            url: self.url().to_string(),
            reason,
        }
    }

    fn timeout(&self) -> PbError {
        PbError::Timeout {
            url: self.url().to_string(),
        }
    }
}

/// rustls with ring and the system's roots.
fn tls_config() -> Result<rustls::ClientConfig, PbError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PbError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn check(status: StatusCode, method: &Method, path: &str, answer: &[u8]) -> Result<(), PbError> {
    if status.is_success() {
        return Ok(());
    }
    Err(PbError::Status {
        method: method.to_string(),
        path: path.split('?').next().unwrap_or(path).to_string(),
        status: status.as_u16(),
        message: message_of(answer),
    })
}

fn parse_json(path: &str, answer: &[u8]) -> Result<Value, PbError> {
    if answer.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(answer).map_err(|e| PbError::Answer {
        path: path.split('?').next().unwrap_or(path).to_string(),
        reason: format!("not JSON: {e}"),
    })
}

/// PocketBase's `{"message": ...}`, else the start of the body.
fn message_of(answer: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(answer)
        && let Some(Value::String(message)) = map.get("message")
    {
        let details = map
            .get("data")
            .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        return format!("{message}{details}");
    }
    let text = String::from_utf8_lossy(answer);
    text.chars().take(200).collect()
}

fn token_in(path: &str, answer: &Value) -> Result<String, PbError> {
    match answer.get("token") {
        Some(Value::String(token)) if !token.is_empty() => Ok(token.clone()),
        _ => Err(PbError::Answer {
            path: path.to_string(),
            reason: "no token in the answer".into(),
        }),
    }
}

/// An error and its causes, on one line: hyper's own says only "client
/// error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_from_pocketbases_answer() {
        assert_eq!(
            message_of(
                br#"{"data":{},"message":"The requested resource wasn't found.","status":404}"#
            ),
            "The requested resource wasn't found."
        );
        assert_eq!(
            message_of(br#"{"data":{"name":{"code":"validation_required"}},"message":"Failed to create record."}"#),
            r#"Failed to create record. {"name":{"code":"validation_required"}}"#
        );
        assert_eq!(message_of(b"plain text"), "plain text");
    }

    #[test]
    fn the_base_url_keeps_its_path() {
        let config = PocketBaseConfig {
            url: url::Url::parse("http://127.0.0.1:8090/pb").unwrap(),
            email: "a@b.c".into(),
            password: "hunter2".into(),
            collection: "queues".into(),
            follow: true,
        };
        let client = Client::new(&config).unwrap();
        assert_eq!(
            client.uri("api/realtime").unwrap().to_string(),
            "http://127.0.0.1:8090/pb/api/realtime"
        );
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
