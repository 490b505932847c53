//! The `command` job's `data`, parsed into a typed [`CommandJob`], and the
//! allow lists' checks (programs, and the variables `env` may set).
//!
//! One parser serves `validate` and `run`, so a row that reached the table
//! without `validate` is held to the same rules, allow lists included. The
//! check compares `argv[0]` with each JOB_COMMAND_ALLOW entry as written,
//! byte for byte, rather than resolving paths: `/usr/bin/../bin/rm` is
//! refused even where it is `/bin/rm`, so the list means exactly what it
//! says and nothing on disk can change its meaning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::CommandError;
use super::env::EnvAllow;

/// The keys `data` may hold.
const KEYS: &[&str] = &["argv", "cwd", "env", "stdin"];

/// A parsed, allowed `command` job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandJob {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub stdin: Option<String>,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> CommandError {
    CommandError::Payload {
        field: field.into(),
        reason: reason.into(),
    }
}

fn no_nul(field: &str, s: &str) -> Result<(), CommandError> {
    if s.contains('\0') {
        return Err(bad(field, "cannot contain a NUL character"));
    }
    Ok(())
}

impl CommandJob {
    /// Parses `data`, checks `argv[0]` against `allow` and every name in
    /// `env` against `env_allow`; the error names the field at fault.
    pub fn parse(
        data: &Value,
        allow: &[PathBuf],
        env_allow: &EnvAllow,
    ) -> Result<CommandJob, CommandError> {
        let Value::Object(object) = data else {
            return Err(bad("data", "expected an object"));
        };
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(
                key.as_str(),
                format!("unknown key; expected one of {}", KEYS.join(", ")),
            ));
        }

        let argv = match object.get("argv") {
            None | Some(Value::Null) => return Err(bad("argv", "required")),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let field = format!("argv[{i}]");
                    let s = item
                        .as_str()
                        .ok_or_else(|| bad(&field, "expected a string"))?;
                    no_nul(&field, s)?;
                    Ok(s.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad("argv", "expected a list of strings, program first")),
        };
        let Some(program) = argv.first() else {
            return Err(bad("argv", "cannot be empty: the program comes first"));
        };
        if !Path::new(program).is_absolute() {
            return Err(bad(
                "argv[0]",
                format!("{program:?} is not an absolute path"),
            ));
        }
        // Byte for byte; see the module notes.
        if !allow.iter().any(|a| a.as_os_str() == program.as_str()) {
            return Err(CommandError::NotAllowed {
                program: program.clone(),
            });
        }

        let cwd = match optional_string(object, "cwd")? {
            None => None,
            Some(cwd) => {
                no_nul("cwd", &cwd)?;
                if !Path::new(&cwd).is_absolute() {
                    return Err(bad("cwd", format!("{cwd:?} is not an absolute path")));
                }
                Some(PathBuf::from(cwd))
            }
        };

        let env = match object.get("env") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(vars)) => {
                let mut env = BTreeMap::new();
                for (name, value) in vars {
                    let field = format!("env.{name}");
                    if let Some(reason) = env_allow.refusal(name) {
                        return Err(bad(field, reason));
                    }
                    let value = value
                        .as_str()
                        .ok_or_else(|| bad(&field, "expected a string"))?;
                    no_nul(&field, value)?;
                    env.insert(name.clone(), value.to_string());
                }
                env
            }
            Some(_) => return Err(bad("env", "expected an object of NAME: value")),
        };

        let stdin = optional_string(object, "stdin")?;

        Ok(CommandJob {
            argv,
            cwd,
            env,
            stdin,
        })
    }

    /// `argv[0]`, the program.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }
}

fn optional_string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, CommandError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "expected a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allow() -> Vec<PathBuf> {
        vec![PathBuf::from("/bin/echo")]
    }

    fn env_allow() -> EnvAllow {
        EnvAllow::new(["A", "B"])
    }

    fn err(data: Value) -> String {
        CommandJob::parse(&data, &allow(), &env_allow())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_payload_parses() {
        let job = CommandJob::parse(
            &json!({"argv": ["/bin/echo", "hi"], "cwd": "/tmp", "env": {"A": "1"}, "stdin": "x"}),
            &allow(),
            &env_allow(),
        )
        .unwrap();
        assert_eq!(job.argv, ["/bin/echo", "hi"]);
        assert_eq!(job.cwd, Some(PathBuf::from("/tmp")));
        assert_eq!(job.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(job.stdin.as_deref(), Some("x"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(json!({})), "argv: required");
        assert_eq!(
            err(json!({"argv": []})),
            "argv: cannot be empty: the program comes first"
        );
        assert_eq!(
            err(json!({"argv": "/bin/echo hi"})),
            "argv: expected a list of strings, program first"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo", 1]})),
            "argv[1]: expected a string"
        );
        assert_eq!(
            err(json!({"argv": ["echo"]})),
            "argv[0]: \"echo\" is not an absolute path"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/rm", "-rf", "/"]})),
            "argv[0]: \"/bin/rm\" is not in JOB_COMMAND_ALLOW"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/../bin/echo"]})),
            "argv[0]: \"/bin/../bin/echo\" is not in JOB_COMMAND_ALLOW"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo"], "cwd": "tmp"})),
            "cwd: \"tmp\" is not an absolute path"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo"], "env": {"A": 1}})),
            "env.A: expected a string"
        );
        assert!(
            err(json!({"argv": ["/bin/echo"], "env": {"A=B": "1"}})).starts_with(
                "env.A=B: not in JOB_COMMAND_ENV_ALLOW, and never allowed: not a plain"
            )
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo"], "env": {"A": "1", "PATH": "/tmp/evil"}})),
            "env.PATH: not in JOB_COMMAND_ENV_ALLOW"
        );
        assert!(
            err(json!({"argv": ["/bin/echo"], "env": {"LD_PRELOAD": "/tmp/evil.so"}}))
                .starts_with("env.LD_PRELOAD: not in JOB_COMMAND_ENV_ALLOW, and never allowed")
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo"], "stdin": ["x"]})),
            "stdin: expected a string"
        );
        assert_eq!(
            err(json!({"argv": ["/bin/echo", "a\u{0}b"]})),
            "argv[1]: cannot contain a NUL character"
        );
        assert!(
            err(json!({"argv": ["/bin/echo"], "shell": true})).starts_with("shell: unknown key")
        );
    }
}
