//! `CRONQ_DATABASE_URL`: where the PostgreSQL store connects, parsed and
//! checked before any connection is tried.
//!
//! The accepted form is libpq's URL, one host:
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME?sslmode=MODE&sslrootcert=FILE`
//! (`postgresql://` too; `?host=/run/postgresql` for a Unix socket
//! directory instead of a TCP host). The password is taken from the URL,
//! else from `PGPASSFILE`, else from the systemd credential
//! `database_password` (see `password.rs`). It is kept in a
//! [`Secret`], whose `Debug` says `[redacted]`; [`PgSettings`]'s `Display`
//! is the URL without it, which is what `status` and every error show.
//!
//! `sslmode` keeps libpq's meanings (see [`SslMode`]), with one decision
//! where libpq reads `~/.postgresql/root.crt`: `verify-ca` and
//! `verify-full` without `sslrootcert` trust the system's certificate
//! store, as `sslrootcert=system` does.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::password::{self, Secret};

/// The variable that selects PostgreSQL and says where it is.
pub const DATABASE_URL_VAR: &str = "CRONQ_DATABASE_URL";

const DEFAULT_PORT: u16 = 5432;
/// What is escaped in the user and database names of the display form.
const URL_PART: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'@');
/// Stands in for an empty host while the URL is parsed.
const NO_HOST: &str = "no-host.invalid";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection is encrypted, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not
    /// checked (libpq's default, and ours when `sslmode` is absent). It
    /// keeps a passive eavesdropper out, not an active one.
    Prefer,
    /// TLS or no connection; the certificate is not checked unless
    /// `sslrootcert` is given, which makes it `verify-ca` (as libpq does).
    Require,
    /// TLS, and the server's certificate must chain to a trusted root.
    VerifyCa,
    /// `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Result<SslMode, SettingsError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(SettingsError::Invalid(
                    "sslmode=allow is not supported (it tries plain TCP first); use prefer or disable"
                        .into(),
                ));
            }
            other => {
                return Err(SettingsError::Invalid(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// The certificates a verifying TLS mode trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The system's store (`sslrootcert=system`, or none given).
    System,
    /// PEM certificates in this file.
    File(PathBuf),
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or address.
    Tcp(String),
    /// A directory holding the server's Unix socket.
    Socket(PathBuf),
}

/// Connection settings, validated. Holds the password, so it is never
/// printed with `{:?}` in full: its `Debug` and `Display` leave it out.
#[derive(Clone)]
pub struct PgSettings {
    pub user: String,
    pub host: Host,
    pub port: u16,
    pub dbname: String,
    pub ssl_mode: SslMode,
    /// As given; `None` with a verifying mode means [`RootCerts::System`].
    pub root_certs: Option<RootCerts>,
    pub connect_timeout: Duration,
    pub application_name: Option<String>,
    pub(super) password: Option<Secret>,
    /// Where the password came from, for messages (never the password).
    pub password_source: Option<&'static str>,
}

/// Why `CRONQ_DATABASE_URL` (or the password behind it) cannot be used.
/// No message quotes the URL as given: it may hold the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{DATABASE_URL_VAR} is not a PostgreSQL URL: {0}")]
    Invalid(String),
    #[error("{DATABASE_URL_VAR}: {0}")]
    Password(String),
}

impl PgSettings {
    /// Parses `url`, resolving the password through `env` (the process
    /// environment in the daemon; a map in tests).
    pub fn parse(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgSettings, SettingsError> {
        let mut settings = parse_url(url)?;
        if settings.password.is_none() {
            let found = password::lookup(&settings, env).map_err(SettingsError::Password)?;
            if let Some((secret, source)) = found {
                settings.password = Some(secret);
                settings.password_source = Some(source);
            }
        }
        Ok(settings)
    }

    /// Parses `CRONQ_DATABASE_URL` from the process environment; `None`
    /// when it is unset or empty (SQLite then).
    pub fn from_env() -> Result<Option<PgSettings>, SettingsError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match env(DATABASE_URL_VAR) {
            None => Ok(None),
            Some(url) => PgSettings::parse(&url, &env).map(Some),
        }
    }

    /// `host:port` (or the socket directory), for messages.
    pub fn server(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Socket(dir) => format!("{} (port {})", dir.display(), self.port),
        }
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The trust the TLS mode verifies against, if it verifies at all.
    pub fn verifying_roots(&self) -> Option<RootCerts> {
        match self.ssl_mode {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                Some(self.root_certs.clone().unwrap_or(RootCerts::System))
            }
            SslMode::Require => self.root_certs.clone(),
            SslMode::Disable | SslMode::Prefer => None,
        }
    }
}

/// The URL without its password: what `status` and errors show.
impl fmt::Display for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, URL_PART).to_string();
        write!(f, "postgres://{}@", enc(&self.user))?;
        match &self.host {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port)?,
            Host::Tcp(h) => write!(f, "{h}:{}", self.port)?,
            Host::Socket(_) => write!(f, ":{}", self.port)?,
        }
        write!(
            f,
            "/{}?sslmode={}",
            enc(&self.dbname),
            self.ssl_mode.as_str()
        )?;
        if let Host::Socket(dir) = &self.host {
            write!(f, "&host={}", dir.display())?;
        }
        match &self.root_certs {
            Some(RootCerts::System) => write!(f, "&sslrootcert=system")?,
            Some(RootCerts::File(p)) => write!(f, "&sslrootcert={}", p.display())?,
            None => {}
        }
        Ok(())
    }
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.to_string())
            .field("password", &self.password)
            .field("password_source", &self.password_source)
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid(reason.into())
}

fn decode(part: &str, what: &str) -> Result<String, SettingsError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("its {what} is not UTF-8 once percent-decoded")))
}

fn parse_url(text: &str) -> Result<PgSettings, SettingsError> {
    let text = text.trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(invalid(
            "it must start with postgres:// or postgresql://, as in postgres://cronq@db.example:5432/cronq",
        ));
    }
    // libpq allows an empty host (`postgres://user@/db?host=/run/...`);
    // the url crate does not, so a placeholder stands in for it.
    let scheme_end = text.find("://").map_or(0, |i| i + 3);
    let authority_end = text[scheme_end..]
        .find(['/', '?'])
        .map_or(text.len(), |i| scheme_end + i);
    let host_start = text[scheme_end..authority_end]
        .rfind('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let no_host = text[host_start..authority_end].is_empty()
        || text[host_start..authority_end].starts_with(':');
    let text = if no_host {
        format!("{}{NO_HOST}{}", &text[..host_start], &text[host_start..])
    } else {
        text.to_string()
    };
    // The url crate's messages name the part, never echo the input.
    let url = url::Url::parse(&text).map_err(|e| invalid(e.to_string()))?;
    let user = decode(url.username(), "user name")?;
    if user.is_empty() {
        return Err(invalid(
            "it names no user: write postgres://USER@HOST/DBNAME",
        ));
    }
    let password = match url.password() {
        Some(p) => Some(Secret::new(decode(p, "password")?)),
        None => None,
    };
    let mut host = match url.host() {
        Some(url::Host::Domain(NO_HOST)) if no_host => None,
        Some(url::Host::Domain(h)) if h.contains(',') => {
            return Err(invalid("it names several hosts; cronq connects to one"));
        }
        Some(url::Host::Domain(h)) => Some(Host::Tcp(decode(h, "host")?)),
        Some(url::Host::Ipv4(a)) => Some(Host::Tcp(a.to_string())),
        Some(url::Host::Ipv6(a)) => Some(Host::Tcp(a.to_string())),
        None => None,
    };
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let path = url.path().trim_start_matches('/');
    if path.contains('/') {
        return Err(invalid("its path must be one database name, as in /cronq"));
    }
    let dbname = match decode(path, "database name")? {
        name if name.is_empty() => user.clone(),
        name => name,
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut root_certs = None;
    let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    let mut application_name = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => ssl_mode = SslMode::parse(&value)?,
            "sslrootcert" if value == "system" => root_certs = Some(RootCerts::System),
            "sslrootcert" if value.is_empty() => {
                return Err(invalid("sslrootcert is empty: name a PEM file, or system"));
            }
            "sslrootcert" => root_certs = Some(RootCerts::File(PathBuf::from(value.as_ref()))),
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| {
                        invalid(format!(
                            "connect_timeout={value} is not a number of seconds from 1 to 3600"
                        ))
                    })?;
                connect_timeout = Duration::from_secs(secs);
            }
            "application_name" => application_name = Some(value.into_owned()),
            "host" if value.starts_with('/') => {
                if host.is_some() {
                    return Err(invalid(
                        "it names a host and a socket directory (?host=); give one",
                    ));
                }
                host = Some(Host::Socket(PathBuf::from(value.as_ref())));
            }
            "host" => {
                return Err(invalid(
                    "?host= must be a socket directory such as /run/postgresql",
                ));
            }
            "password" => {
                return Err(invalid(
                    "give the password before the host (postgres://USER:PASSWORD@HOST/DB), in PGPASSFILE, or as the credential database_password",
                ));
            }
            other => {
                return Err(invalid(format!(
                    "unknown parameter {other:?}; cronq knows sslmode, sslrootcert, connect_timeout, application_name and host"
                )));
            }
        }
    }
    let host = host.ok_or_else(|| {
        invalid("it names no host: write postgres://USER@HOST/DBNAME, or ?host=/run/postgresql for a local socket")
    })?;
    if matches!(host, Host::Socket(_))
        && ssl_mode != SslMode::Disable
        && ssl_mode != SslMode::Prefer
    {
        return Err(invalid(format!(
            "sslmode={} cannot be used over a Unix socket",
            ssl_mode.as_str()
        )));
    }
    let password_source = password.as_ref().map(|_| "the URL");
    Ok(PgSettings {
        user,
        host,
        port,
        dbname,
        ssl_mode,
        root_certs,
        connect_timeout,
        application_name,
        password,
        password_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(url: &str) -> Result<PgSettings, SettingsError> {
        PgSettings::parse(url, &no_env)
    }

    #[test]
    fn a_full_url_parses() {
        let s = parse("postgres://cronq:s%40cret@db.example:6543/jobs?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3&application_name=node1").unwrap();
        assert_eq!(s.user, "cronq");
        assert_eq!(s.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(s.host, Host::Tcp("db.example".into()));
        assert_eq!(s.port, 6543);
        assert_eq!(s.dbname, "jobs");
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        assert_eq!(s.root_certs, Some(RootCerts::File("/etc/ca.pem".into())));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.application_name.as_deref(), Some("node1"));
        assert_eq!(s.server(), "db.example:6543");
        assert_eq!(s.password_source, Some("the URL"));
    }

    #[test]
    fn defaults_follow_libpq() {
        let s = parse("postgresql://cronq@localhost").unwrap();
        assert_eq!((s.port, s.dbname.as_str()), (5432, "cronq"));
        assert_eq!(s.ssl_mode, SslMode::Prefer);
        assert_eq!(s.verifying_roots(), None);
        let s = parse("postgres://u@[::1]:5433/d?sslmode=verify-ca").unwrap();
        assert_eq!(s.host, Host::Tcp("::1".into()));
        assert_eq!(s.server(), "[::1]:5433");
        assert_eq!(s.verifying_roots(), Some(RootCerts::System));
        let s = parse("postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(s.verifying_roots(), Some(RootCerts::File("/ca.pem".into())));
        let s = parse("postgres://u@/d?host=/run/postgresql").unwrap();
        assert_eq!(s.host, Host::Socket("/run/postgresql".into()));
    }

    #[test]
    fn the_password_never_shows() {
        let s = parse("postgres://cronq:hunter2@db:5432/jobs?sslmode=require").unwrap();
        assert_eq!(
            s.to_string(),
            "postgres://cronq@db:5432/jobs?sslmode=require"
        );
        let s = parse("postgres://a%40b:pw@db/my_db").unwrap();
        assert_eq!(
            s.to_string(),
            "postgres://a%40b@db:5432/my_db?sslmode=prefer"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn bad_urls_are_refused_naming_the_variable_without_echoing_it() {
        for (url, needle) in [
            ("mysql://u:hunter2@h/d", "postgres://"),
            ("postgres://:hunter2@h/d", "no user"),
            ("postgres://u:hunter2@/d", "no host"),
            ("postgres://u:hunter2@h:99999/d", "port"),
            ("postgres://u:hunter2@h/d?sslmode=bogus", "sslmode=bogus"),
            ("postgres://u:hunter2@h/d?sslmode=allow", "allow"),
            ("postgres://u:hunter2@h/d?sslfoo=1", "unknown parameter"),
            ("postgres://u:hunter2@a,b/d", "several hosts"),
            ("postgres://u:hunter2@h/d/e", "one database"),
            (
                "postgres://u:hunter2@h/d?connect_timeout=0",
                "connect_timeout",
            ),
            ("postgres://u@h/d?password=hunter2", "before the host"),
            ("postgres://u@/d?host=/s&sslmode=require", "Unix socket"),
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.starts_with(DATABASE_URL_VAR), "{url}: {err}");
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }
}
