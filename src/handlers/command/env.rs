//! Which environment variables a job may set: only those the operator lists
//! in `JOB_COMMAND_ENV_ALLOW`, and never a few, even if listed.
//!
//! Default-deny, because the environment is code. JOB_COMMAND_ALLOW says
//! which programs run, but `LD_PRELOAD` makes any of them load a library
//! of the caller's choosing, `BASH_FUNC_x%%` defines shell functions,
//! `PATH` swaps the programs a script calls by name, and `BASH_ENV`,
//! `PYTHONPATH`, `PERL5OPT` or `NODE_OPTIONS` make an interpreter run a
//! file first. So a job sets nothing unless the operator named it.
//!
//! Never allowed, whatever the list says, and refused in the list itself:
//! names the C library's loader acts on for every program (`LD_*`,
//! `GCONV_PATH`, `GLIBC_TUNABLES`), bash's exported functions
//! (`BASH_FUNC_*`), and anything that is not a plain name
//! (`[A-Za-z_][A-Za-z0-9_]*`: no `%`, `=`, NUL, dot or dash), which no
//! careful operator lists on purpose. The interpreter hooks above are not
//! in that set: listing `PATH` or `PYTHONPATH` for one's own scripts is a
//! legitimate choice, and cronq(8) says what it hands the job's author.

use std::collections::BTreeSet;

/// Why `name` can never be set by a job, or `None` if the operator may
/// allow it.
pub fn never_allowed(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        Some("not a plain variable name (letters, digits and _, not starting with a digit)")
    } else if name.starts_with("LD_") {
        Some("the dynamic loader loads and runs code named by LD_ variables in every program")
    } else if name == "GCONV_PATH" || name == "GLIBC_TUNABLES" {
        Some("the C library itself acts on it in every program")
    } else if name.starts_with("BASH_FUNC_") {
        Some("bash runs functions defined by BASH_FUNC_ variables")
    } else {
        None
    }
}

/// The names a job may set, as `JOB_COMMAND_ENV_ALLOW` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvAllow {
    names: BTreeSet<String>,
}

impl EnvAllow {
    /// The list, minus any name that can never be allowed (the
    /// configuration refuses those; a library caller gets the same rule).
    pub fn new<I, S>(names: I) -> EnvAllow
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EnvAllow {
            names: names
                .into_iter()
                .map(Into::into)
                .filter(|n| never_allowed(n).is_none())
                .collect(),
        }
    }

    /// Why a job may not set `name`, or `None` if it may. The reason names
    /// JOB_COMMAND_ENV_ALLOW, where the operator would look.
    pub fn refusal(&self, name: &str) -> Option<String> {
        if let Some(why) = never_allowed(name) {
            return Some(format!(
                "not in JOB_COMMAND_ENV_ALLOW, and never allowed: {why}"
            ));
        }
        (!self.names.contains(name)).then(|| "not in JOB_COMMAND_ENV_ALLOW".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_loading_and_odd_names_are_never_allowed() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GCONV_PATH",
            "GLIBC_TUNABLES",
            "BASH_FUNC_env%%",
            "BASH_FUNC_ls",
            "A=B",
            "A%",
            "NUL\0",
            "",
            "1ABC",
            "my-var",
            "a.b",
            "\u{e9}t\u{e9}",
        ] {
            assert!(never_allowed(name).is_some(), "{name:?}");
        }
        for name in [
            "PATH",
            "LANG",
            "TZ",
            "_private",
            "BACKUP_TARGET2",
            "PYTHONPATH",
        ] {
            assert_eq!(never_allowed(name), None, "{name:?}");
        }
    }

    #[test]
    fn only_listed_names_pass() {
        let allow = EnvAllow::new(["BACKUP_TARGET", "LD_PRELOAD", "TZ"]);
        assert_eq!(allow.refusal("BACKUP_TARGET"), None);
        assert_eq!(allow.refusal("TZ"), None);
        assert_eq!(
            allow.refusal("PATH").as_deref(),
            Some("not in JOB_COMMAND_ENV_ALLOW")
        );
        // Listed, but dropped from the list: still refused, saying why.
        let why = allow.refusal("LD_PRELOAD").unwrap();
        assert!(
            why.starts_with("not in JOB_COMMAND_ENV_ALLOW, and never allowed: the dynamic loader"),
            "{why}"
        );
        assert!(EnvAllow::default().refusal("LANG").is_some());
    }
}
