//! Email templates: finding `NAME.txt` / `NAME.html` in the templates folder
//! and rendering `{{name}}` placeholders.
//!
//! The renderer is deliberately not a template language (no loops, no
//! conditions, no nested lookups): a placeholder is `{{`, optional spaces, a
//! name of `[A-Za-z0-9_-]`, optional spaces, `}}`, and anything else that
//! starts with `{{` is left as it is. That keeps every template the replaced
//! system shipped working unchanged and leaves nothing for job data to
//! exploit. Values are HTML-escaped in HTML bodies only; the text body and
//! the subject get them verbatim, because escaping there would show `&amp;`
//! to the reader.
//!
//! Value rules: a string renders as itself, a number or boolean as its JSON
//! text (`42`, `1.5`, `true`), `null` as the empty string (present but empty,
//! unlike a missing variable, which is an error). Arrays and objects are
//! refused: with no loops there is no sensible way to show one, and dumping
//! JSON into someone's inbox is always a mistake.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::EmailError;

/// Longest template name; names become file names.
pub const MAX_NAME_LEN: usize = 128;

/// Largest template file read. A template is a page of mail, not a data set.
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// Whether a template may be written to an HTML body verbatim or needs its
/// values escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    None,
    Html,
}

/// Checks a template name. Only `[A-Za-z0-9_-]` is allowed, so a name can
/// never hold `/` or `..` and reach outside the templates folder.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a template name cannot be empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a template name has at most {MAX_NAME_LEN} characters, this one has {}",
            name.len()
        ));
    }
    if !name.bytes().all(is_name_byte) {
        return Err(format!(
            "{name:?} is not a template name: use only letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Variables ready to render: every value already turned into its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// Turns `data.variables` into texts, refusing arrays and objects.
    /// `field` is the path used in error messages (`variables`).
    pub fn from_json(field: &str, value: Option<&Value>) -> Result<Variables, EmailError> {
        let object = match value {
            None | Some(Value::Null) => return Ok(Variables::default()),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(EmailError::Payload {
                    field: field.to_string(),
                    reason: "expected an object of name: value".to_string(),
                });
            }
        };
        let mut vars = BTreeMap::new();
        for (name, value) in object {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(EmailError::Payload {
                        field: format!("{field}.{name}"),
                        reason: "arrays and objects cannot be rendered; \
                                 pass a string, a number, a boolean or null"
                            .to_string(),
                    });
                }
            };
            vars.insert(name.clone(), text);
        }
        Ok(Variables(vars))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// One piece of a parsed template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

/// Splits `source` into literal text and placeholders.
fn pieces(source: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = source;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut search_from = 0;
        loop {
            let Some(offset) = rest[search_from..].find("{{") else {
                let literal = rest;
                rest = "";
                return Some(Piece::Literal(literal));
            };
            let start = search_from + offset;
            if start > 0 {
                // Emit the text before a placeholder first, but only once we
                // know it is one: `{{ not a name }}` stays literal text.
                if placeholder_at(&rest[start..]).is_some() {
                    let literal = &rest[..start];
                    rest = &rest[start..];
                    return Some(Piece::Literal(literal));
                }
            } else if let Some((name, len)) = placeholder_at(rest) {
                rest = &rest[len..];
                return Some(Piece::Placeholder(name));
            }
            // `+ 1`, not `+ 2`: in `{{{a}}` the placeholder starts at the
            // second brace.
            search_from = start + 1;
        }
    })
}

/// If `s` starts with a placeholder, its name and length in bytes.
fn placeholder_at(s: &str) -> Option<(&str, usize)> {
    let inner = s.strip_prefix("{{")?;
    let trimmed = inner.trim_start_matches(' ');
    let name_len = trimmed.bytes().take_while(|b| is_name_byte(*b)).count();
    if name_len == 0 {
        return None;
    }
    let name = &trimmed[..name_len];
    let after = trimmed[name_len..].trim_start_matches(' ');
    after.strip_prefix("}}")?;
    let len = s.len() - after.len() + 2;
    Some((name, len))
}

/// The placeholder names `source` uses, in order, with repeats.
pub fn placeholders(source: &str) -> impl Iterator<Item = &str> {
    pieces(source).filter_map(|piece| match piece {
        Piece::Placeholder(name) => Some(name),
        Piece::Literal(_) => None,
    })
}

/// Fills in `source`. `what` names the source in the error for a missing
/// variable (`subject`, `template welcome_email.html`).
pub fn render(
    what: &str,
    source: &str,
    vars: &Variables,
    escape: Escape,
) -> Result<String, EmailError> {
    let mut out = String::with_capacity(source.len());
    for piece in pieces(source) {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Placeholder(name) => {
                let value = vars.get(name).ok_or_else(|| EmailError::MissingVariable {
                    what: what.to_string(),
                    name: name.to_string(),
                })?;
                match escape {
                    Escape::None => out.push_str(value),
                    Escape::Html => push_html_escaped(&mut out, value),
                }
            }
        }
    }
    Ok(out)
}

fn push_html_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A template's bodies as found on disk; at least one is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub text: Option<String>,
    pub html: Option<String>,
}

/// Reads `NAME.txt` and `NAME.html` from `dir`. Both missing is an unknown
/// template; any other read failure may be passing (a remount, a deploy in
/// progress) and is reported as such.
pub async fn load(dir: &Path, name: &str) -> Result<Template, EmailError> {
    let (dir, name) = (dir.to_path_buf(), name.to_string());
    let path = dir.clone();
    tokio::task::spawn_blocking(move || load_now(&dir, &name))
        .await
        .unwrap_or_else(|e| {
            Err(EmailError::TemplateIo {
                path,
                source: std::io::Error::other(format!("the read was cancelled: {e}")),
            })
        })
}

/// [`load`], on the calling thread: for `validate`, which is not async.
pub fn load_now(dir: &Path, name: &str) -> Result<Template, EmailError> {
    check_name(name).map_err(|reason| EmailError::Payload {
        field: "template".to_string(),
        reason,
    })?;
    let text = read_optional(dir.join(format!("{name}.txt")))?;
    let html = read_optional(dir.join(format!("{name}.html")))?;
    if text.is_none() && html.is_none() {
        return Err(EmailError::UnknownTemplate {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(Template { text, html })
}

/// Templates read for enqueue-time checks, kept while their files are
/// unchanged: a batch of ten thousand welcome emails costs two `stat`s per
/// job, not two reads. Run time reads afresh ([`load`]).
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, (Stamp, Arc<Template>)>>,
}

/// Identity of one file of a template: device, inode, mtime (s, ns), size.
type FileStamp = (u64, u64, i64, i64, u64);

/// Identity of both files of a template (`None`: absent).
type Stamp = [Option<FileStamp>; 2];

/// Templates a cache keeps at most; past that it starts again empty.
const CACHED_TEMPLATES: usize = 256;

impl Cache {
    /// The template `name` in `dir`, as [`load_now`] reads it.
    pub fn get(&self, dir: &Path, name: &str) -> Result<Arc<Template>, EmailError> {
        check_name(name).map_err(|reason| EmailError::Payload {
            field: "template".to_string(),
            reason,
        })?;
        let stamp = [
            stamp(&dir.join(format!("{name}.txt")))?,
            stamp(&dir.join(format!("{name}.html")))?,
        ];
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, template)) = entries.get(name)
            && *seen == stamp
        {
            return Ok(template.clone());
        }
        let template = Arc::new(load_now(dir, name)?);
        if entries.len() >= CACHED_TEMPLATES {
            entries.clear();
        }
        entries.insert(name.to_string(), (stamp, template.clone()));
        Ok(template)
    }
}

fn stamp(path: &Path) -> Result<Option<FileStamp>, EmailError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.len()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmailError::TemplateIo {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_optional(path: PathBuf) -> Result<Option<String>, EmailError> {
    let io_error = |source: std::io::Error| EmailError::TemplateIo {
        path: path.clone(),
        source,
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "too big".
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(EmailError::TemplateTooLarge {
            path,
            limit: MAX_TEMPLATE_BYTES,
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| EmailError::TemplateNotUtf8 { path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: Value) -> Variables {
        Variables::from_json("variables", Some(&value)).unwrap()
    }

    #[test]
    fn placeholders_with_and_without_spaces() {
        let v = vars(json!({"name": "Ann", "company": "Acme"}));
        let out = render("t", "Hi {{name}} of {{ company }}!", &v, Escape::None).unwrap();
        assert_eq!(out, "Hi Ann of Acme!");
    }

    #[test]
    fn things_that_are_not_placeholders_stay() {
        let v = vars(json!({"a": "1"}));
        for source in [
            "{{", "}}", "{{}}", "{{ }}", "{{a b}}", "{{a", "{ {a} }", "{{{a}}", "x {{-}",
        ] {
            let expected = match source {
                // `{{{a}}`: the second `{{` starts a real placeholder.
                "{{{a}}" => "{1".to_string(),
                _ => source.to_string(),
            };
            assert_eq!(
                render("t", source, &v, Escape::None).unwrap(),
                expected,
                "{source}"
            );
        }
    }

    #[test]
    fn repeated_and_adjacent_placeholders() {
        let v = vars(json!({"a": "1", "b": "2"}));
        assert_eq!(
            render("t", "{{a}}{{b}}{{a}}", &v, Escape::None).unwrap(),
            "121"
        );
        let names: Vec<_> = placeholders("{{a}} {{ b }} {{a}} {{ c d }}").collect();
        assert_eq!(names, ["a", "b", "a"]);
    }

    #[test]
    fn html_escaping_only_when_asked() {
        let v = vars(json!({"n": "<b>Tom & \"Jerry\"'s</b>"}));
        assert_eq!(
            render("t", "{{n}}", &v, Escape::Html).unwrap(),
            "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&#39;s&lt;/b&gt;"
        );
        assert_eq!(
            render("t", "{{n}}", &v, Escape::None).unwrap(),
            "<b>Tom & \"Jerry\"'s</b>"
        );
        // The template's own markup is never escaped.
        assert_eq!(
            render("t", "<p>{{n}}</p>", &vars(json!({"n": "x"})), Escape::Html).unwrap(),
            "<p>x</p>"
        );
    }

    #[test]
    fn value_rules() {
        let v = vars(json!({"i": 42, "f": 1.5, "t": true, "z": null}));
        assert_eq!(
            render("t", "{{i}} {{f}} {{t}} [{{z}}]", &v, Escape::None).unwrap(),
            "42 1.5 true []"
        );
        let err = Variables::from_json("variables", Some(&json!({"o": {"x": 1}})))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("variables.o: arrays and objects"), "{err}");
        let err = Variables::from_json("variables", Some(&json!([1])))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("variables: expected an object"), "{err}");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = render(
            "subject",
            "Hi {{ who }}",
            &Variables::default(),
            Escape::None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "subject: no value for {{who}} in variables");
    }

    #[test]
    fn a_value_is_not_rendered_again() {
        let v = vars(json!({"a": "{{b}}", "b": "no"}));
        assert_eq!(render("t", "{{a}}", &v, Escape::None).unwrap(), "{{b}}");
    }

    #[test]
    fn non_ascii_around_placeholders() {
        let v = vars(json!({"n": "Zoë"}));
        assert_eq!(
            render("t", "Grüße {{n}} — {{", &v, Escape::None).unwrap(),
            "Grüße Zoë — {{"
        );
    }

    #[test]
    fn template_names() {
        assert!(check_name("welcome_email").is_ok());
        assert!(check_name("A-1").is_ok());
        for bad in ["", "../x", "a/b", "a.b", "é", ".", " a"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn loading_finds_either_or_both_bodies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("both.txt"), "t").unwrap();
        std::fs::write(dir.path().join("both.html"), "h").unwrap();
        std::fs::write(dir.path().join("html_only.html"), "h").unwrap();
        let t = load(dir.path(), "both").await.unwrap();
        assert_eq!(
            (t.text.as_deref(), t.html.as_deref()),
            (Some("t"), Some("h"))
        );
        let t = load(dir.path(), "html_only").await.unwrap();
        assert_eq!((t.text, t.html.as_deref()), (None, Some("h")));
        let err = load(dir.path(), "absent").await.unwrap_err();
        assert!(matches!(err, EmailError::UnknownTemplate { .. }), "{err}");
        let err = load(dir.path(), "../both").await.unwrap_err();
        assert!(err.to_string().starts_with("template: "), "{err}");
    }

    #[tokio::test]
    async fn oversized_and_non_utf8_templates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("big.txt"),
            vec![b'a'; MAX_TEMPLATE_BYTES as usize + 1],
        )
        .unwrap();
        std::fs::write(dir.path().join("bin.txt"), [0xff, 0xfe]).unwrap();
        let err = load(dir.path(), "big").await.unwrap_err();
        assert!(matches!(err, EmailError::TemplateTooLarge { .. }), "{err}");
        let err = load(dir.path(), "bin").await.unwrap_err();
        assert!(matches!(err, EmailError::TemplateNotUtf8 { .. }), "{err}");
    }
}
