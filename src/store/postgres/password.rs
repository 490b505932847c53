//! The database password when the URL has none: `PGPASSFILE` (libpq's
//! format and permission rule), else the systemd credential
//! `database_password`; and [`Secret`], which keeps it out of every log,
//! error and `Debug` text.
//!
//! Decided where libpq differs: a `PGPASSFILE` that is set but cannot be
//! read, or that others may read, is an error rather than a warning and a
//! silent fallback, since a daemon that quietly loses its password fails
//! later with a less helpful message. `~/.pgpass` is not read: a service
//! account's home is rarely where its secrets live.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::url::{Host, PgSettings};

/// A password. Its `Debug` is `[redacted]` and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The credential name under `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL: &str = "database_password";

/// The password for `settings` and where it came from, if any source has
/// one. Errors name the file, never its content.
pub(super) fn lookup(
    settings: &PgSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, &'static str)>, String> {
    if let Some(file) = env("PGPASSFILE")
        && let Some(found) = from_passfile(Path::new(&file), settings)?
    {
        return Ok(Some((found, "PGPASSFILE")));
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(CREDENTIAL);
        match std::fs::read_to_string(&path) {
            Ok(value) => {
                let value = value.trim_end_matches(['\r', '\n']);
                return Ok(Some((
                    Secret::new(value.to_string()),
                    "the credential database_password",
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot read the credential {}: {e}",
                    path.display()
                ));
            }
        }
    }
    Ok(None)
}

fn from_passfile(path: &Path, settings: &PgSettings) -> Result<Option<Secret>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("PGPASSFILE names {shown}, which cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "PGPASSFILE names {shown}, which is not a plain file"
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "PGPASSFILE {shown} may be read by others (mode {mode:04o}); make it 0600 (chmod 600 {shown})"
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("PGPASSFILE names {shown}, which cannot be read: {e}"))?;
    let host = match &settings.host {
        Host::Tcp(h) => h.clone(),
        // libpq writes the default socket as "localhost".
        Host::Socket(dir) => dir.display().to_string(),
    };
    let port = settings.port.to_string();
    let wanted = [
        host.as_str(),
        port.as_str(),
        &settings.dbname,
        &settings.user,
    ];
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, want)| field == "*" || field == want);
        if matches {
            return Ok(Some(Secret::new(fields[4..].join(":"))));
        }
    }
    Ok(None)
}

/// Splits a passfile line on unescaped `:`; `\:` and `\\` stand for `:`
/// and `\`.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(url: &str, env: &HashMap<&str, String>) -> Result<PgSettings, String> {
        PgSettings::parse(url, &|k| env.get(k).cloned()).map_err(|e| e.to_string())
    }

    fn passfile(dir: &Path, text: &str, mode: u32) -> String {
        let path = dir.join("pgpass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_passfile_matches_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let file = passfile(
            dir.path(),
            "# comment\nother:5432:jobs:cronq:wrong\ndb:*:jobs:cronq:pa\\:ss\\\\w:rd\n*:*:*:*:fallback\n",
            0o600,
        );
        let env = HashMap::from([("PGPASSFILE", file)]);
        let s = settings("postgres://cronq@db:6000/jobs", &env).unwrap();
        assert_eq!(s.password.as_ref().unwrap().expose(), "pa:ss\\w:rd");
        assert_eq!(s.password_source, Some("PGPASSFILE"));
        let s = settings("postgres://someone@elsewhere/x", &env).unwrap();
        assert_eq!(s.password.as_ref().unwrap().expose(), "fallback");
        // The URL's own password wins.
        let s = settings("postgres://cronq:mine@db:6000/jobs", &env).unwrap();
        assert_eq!(s.password.as_ref().unwrap().expose(), "mine");
    }

    #[test]
    fn a_passfile_others_can_read_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = passfile(dir.path(), "*:*:*:*:topsecret\n", 0o644);
        let env = HashMap::from([("PGPASSFILE", file.clone())]);
        let err = settings("postgres://cronq@db/jobs", &env).unwrap_err();
        assert!(err.contains("CRONQ_DATABASE_URL"), "{err}");
        assert!(err.contains(&file) && err.contains("0644"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        let env = HashMap::from([("PGPASSFILE", "/nonexistent/pgpass".to_string())]);
        let err = settings("postgres://cronq@db/jobs", &env).unwrap_err();
        assert!(err.contains("/nonexistent/pgpass"), "{err}");
    }

    #[test]
    fn the_systemd_credential_comes_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CREDENTIAL), "from-systemd\n").unwrap();
        let creds = dir.path().display().to_string();
        let env = HashMap::from([("CREDENTIALS_DIRECTORY", creds.clone())]);
        let s = settings("postgres://cronq@db/jobs", &env).unwrap();
        assert_eq!(s.password.as_ref().unwrap().expose(), "from-systemd");
        assert_eq!(s.password_source, Some("the credential database_password"));
        // A passfile line that matches is preferred.
        let file = passfile(dir.path(), "*:*:*:cronq:from-file\n", 0o600);
        let env = HashMap::from([("CREDENTIALS_DIRECTORY", creds), ("PGPASSFILE", file)]);
        let s = settings("postgres://cronq@db/jobs", &env).unwrap();
        assert_eq!(s.password.as_ref().unwrap().expose(), "from-file");
        // None at all: trust or peer authentication.
        let s = settings("postgres://cronq@db/jobs", &HashMap::new()).unwrap();
        assert!(!s.has_password());
    }

    #[test]
    fn a_secret_debugs_as_redacted() {
        assert_eq!(format!("{:?}", Secret::new("x".into())), "[redacted]");
    }
}
