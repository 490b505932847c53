//! Finds the examples in README.md, docs/PROTOCOL.md and the man pages, for
//! tests/doc_examples.rs, which runs them.
//!
//! The convention (README.md's "Development" section says the same):
//!
//! - Each document names how its examples run in one directive comment,
//!   `<!-- examples: LAYOUT [NAME=value ...] -->` in Markdown or
//!   `.\" examples: LAYOUT [NAME=value ...]` in a man page. LAYOUT is
//!   `checkout` (a daemon in the current directory, as `cargo run` in a
//!   checkout) or `installed` (the package's directories, /etc/cronq,
//!   /var/lib/cronq, /run/cronq); the variables are the daemon's settings,
//!   as in /etc/cronq/cronq.env.
//! - Markdown: every fenced block is an example. ```` ```sh ```` blocks run,
//!   ```` ```python ```` blocks run with `python3` (the test's Python, in the
//!   session's directory and environment) and must exit 0,
//!   ```` ```toml ```` blocks are crons files that must pass `cronq check`,
//!   and a ```` ```json ```` block right after a `sh` block holds the answers
//!   that block prints. Any other block needs a marker.
//! - Man pages: every `.Bd -literal` block needs a marker on the line before
//!   it, `.\" example: sh` or `.\" example: toml`.
//! - A marker `example: skip: REASON` (an HTML comment before a fenced
//!   block, a roff comment before `.Bd`) leaves a block out; the reason must
//!   say why it cannot run in a test. `example: toml NAME=value ...` gives
//!   the variables `cronq check` runs with (the handlers a crons file uses
//!   must be enabled).
//!
//! A block with neither a runnable kind nor a justified skip is an error, so
//! a new example cannot be added without being run.

#![allow(dead_code)]

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Checkout,
    Installed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Shell,
    /// A Python program, run with `python3`.
    Python,
    /// A crons file, checked with these extra variables.
    Toml(Vec<(String, String)>),
    Skip(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// 1-based line of the block's first line of text in its document.
    pub line: usize,
    pub kind: Kind,
    pub text: String,
    /// The answers the block prints, when the document shows them.
    pub answers: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub layout: Layout,
    pub env: Vec<(String, String)>,
    pub blocks: Vec<Block>,
}

/// `NAME=value` words, as a marker or directive lists them.
fn assignments(words: &[&str], at: &str) -> Result<Vec<(String, String)>, String> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(format!("{at}: {w:?} is not NAME=value")),
        })
        .collect()
}

fn directive(text: &str, at: &str) -> Result<(Layout, Vec<(String, String)>), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let layout = match words.first() {
        Some(&"checkout") => Layout::Checkout,
        Some(&"installed") => Layout::Installed,
        other => {
            return Err(format!(
                "{at}: the examples directive needs a layout, checkout or installed, got {other:?}"
            ));
        }
    };
    Ok((layout, assignments(&words[1..], at)?))
}

/// A marker's text after `example:`.
fn marker(text: &str, at: &str) -> Result<Kind, String> {
    let text = text.trim();
    if let Some(reason) = text.strip_prefix("skip:") {
        let reason = reason.trim();
        if reason.len() < 10 {
            return Err(format!(
                "{at}: a skip marker must say why the block cannot run in a test"
            ));
        }
        return Ok(Kind::Skip(reason.to_string()));
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.first() {
        Some(&"sh") if words.len() == 1 => Ok(Kind::Shell),
        Some(&"toml") => Ok(Kind::Toml(assignments(&words[1..], at)?)),
        _ => Err(format!(
            "{at}: unknown example marker {text:?}; expected sh, toml [NAME=value ...] or skip: REASON"
        )),
    }
}

fn html_comment<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim()
        .strip_prefix(key)
}

/// The examples of a Markdown document.
pub fn markdown(name: &str, text: &str) -> Result<Doc, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found_directive = None;
    let mut blocks: Vec<Block> = Vec::new();
    // The previous block, if nothing but blank lines followed it: a json
    // block there holds its answers.
    let mut last_shell_end: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = html_comment(line, "examples:") {
            if found_directive.is_some() {
                return Err(format!("{name}:{}: a second examples directive", i + 1));
            }
            found_directive = Some(directive(rest, &format!("{name}:{}", i + 1))?);
        }
        let Some(info) = line.trim_start().strip_prefix("```") else {
            if !line.trim().is_empty() {
                last_shell_end = None;
            }
            i += 1;
            continue;
        };
        let open = i;
        let end = (open + 1..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or_else(|| format!("{name}:{}: unclosed code block", open + 1))?;
        let body = lines[open + 1..end].join("\n") + "\n";
        let at = format!("{name}:{}", open + 1);
        let before = (0..open).rev().find(|&j| !lines[j].trim().is_empty());
        let marked = match before.and_then(|j| html_comment(lines[j], "example:")) {
            Some(text) => Some(marker(text, &at)?),
            None => None,
        };
        let answer_to = last_shell_end.filter(|_| info.trim() == "json" && marked.is_none());
        let kind = match (marked, info.trim()) {
            (Some(Kind::Skip(reason)), _) => Kind::Skip(reason),
            (Some(Kind::Toml(env)), "toml") => Kind::Toml(env),
            (None, "toml") => Kind::Toml(Vec::new()),
            (None, "sh") => Kind::Shell,
            (None, "python") => Kind::Python,
            (None, "json") if answer_to.is_some() => {
                let answers = json_values(&body).map_err(|e| format!("{at}: {e}"))?;
                let shell = blocks.last_mut().expect("the shell block before");
                shell.answers = Some(answers);
                last_shell_end = None;
                i = end + 1;
                continue;
            }
            (Some(kind), info) => {
                return Err(format!("{at}: a ```{info} block cannot be run as {kind:?}"));
            }
            (None, info) => {
                return Err(format!(
                    "{at}: a ```{info} block is neither run (sh, python, toml, or json answers right after \
                     a sh block) nor marked <!-- example: skip: REASON -->"
                ));
            }
        };
        last_shell_end = (kind == Kind::Shell).then_some(end);
        blocks.push(Block {
            line: open + 2,
            kind,
            text: body,
            answers: None,
        });
        i = end + 1;
    }
    let (layout, env) =
        found_directive.ok_or_else(|| format!("{name}: no <!-- examples: LAYOUT --> directive"))?;
    Ok(Doc {
        layout,
        env,
        blocks,
    })
}

/// The examples of a man page (mdoc).
pub fn roff(name: &str, text: &str) -> Result<Doc, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found_directive = None;
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let at = format!("{name}:{}", i + 1);
        if let Some(rest) = line.strip_prefix(".\\\" examples:") {
            if found_directive.is_some() {
                return Err(format!("{at}: a second examples directive"));
            }
            found_directive = Some(directive(rest, &at)?);
        }
        if !line.starts_with(".Bd -literal") {
            i += 1;
            continue;
        }
        let kind = match i
            .checked_sub(1)
            .and_then(|j| lines[j].strip_prefix(".\\\" example:"))
        {
            Some(text) => marker(text, &at)?,
            None => {
                return Err(format!(
                    "{at}: a .Bd -literal block needs a marker on the line before: \
                     .\\\" example: sh, .\\\" example: toml or .\\\" example: skip: REASON"
                ));
            }
        };
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with(".Ed"))
            .ok_or_else(|| format!("{at}: .Bd without .Ed"))?;
        let mut body = String::new();
        for (k, raw) in lines[i + 1..end].iter().enumerate() {
            let at = format!("{name}:{}", i + 2 + k);
            if raw.starts_with('.') || raw.starts_with('\'') {
                return Err(format!("{at}: a request inside a literal example: {raw:?}"));
            }
            body.push_str(&unescape(raw).map_err(|e| format!("{at}: {e}"))?);
            body.push('\n');
        }
        blocks.push(Block {
            line: i + 2,
            kind,
            text: body,
            answers: None,
        });
        i = end + 1;
    }
    let (layout, env) =
        found_directive.ok_or_else(|| format!("{name}: no .\\\" examples: LAYOUT directive"))?;
    Ok(Doc {
        layout,
        env,
        blocks,
    })
}

/// The roff escapes an example may use; any other is refused rather than
/// guessed at, so the test never runs something the page does not show.
fn unescape(line: &str) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (text, used) = match tail.as_bytes().first() {
            Some(b'e') | Some(b'\\') => ("\\", 1),
            Some(b'-') => ("-", 1),
            Some(b'&') => ("", 1),
            Some(b'(') => match tail.get(1..3) {
                Some("dq") => ("\"", 3),
                Some("aq") => ("'", 3),
                Some("ga") => ("`", 3),
                Some("ti") => ("~", 3),
                Some("ha") => ("^", 3),
                other => return Err(format!("unknown roff character \\({other:?}")),
            },
            _ => return Err(format!("unknown roff escape in {line:?}")),
        };
        out.push_str(text);
        rest = &tail[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The JSON values of an answer block, one after another.
pub fn json_values(text: &str) -> Result<Vec<Value>, String> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("an answer block is not JSON: {e}"))
}

/// Whether `real` has the shape `doc` shows: the same keys at every level
/// (the first element standing for a list), the same `ok` and error code.
/// Other values (ids, times, counts) differ from run to run.
pub fn same_shape(doc: &Value, real: &Value, path: &str) -> Result<(), String> {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            let missing: Vec<&String> = d.keys().filter(|k| !r.contains_key(*k)).collect();
            let extra: Vec<&String> = r.keys().filter(|k| !d.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{path}: the document shows {missing:?} that the answer lacks, \
                     and the answer has {extra:?} that the document does not show"
                ));
            }
            for (k, dv) in d {
                same_shape(dv, &r[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(d), Value::Array(r)) => match (d.first(), r.first()) {
            (Some(dv), Some(rv)) => same_shape(dv, rv, &format!("{path}[0]")),
            _ => Ok(()),
        },
        _ if path.ends_with(".ok") || path.ends_with(".error.code") => {
            if doc == real {
                Ok(())
            } else {
                Err(format!(
                    "{path}: the document shows {doc}, the answer is {real}"
                ))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEAD: &str = "<!-- examples: checkout A=1 -->\n";

    #[test]
    fn markdown_blocks_and_answers_are_found() {
        let doc = markdown(
            "t.md",
            &format!(
                "{HEAD}text\n\n```sh\necho hi\n```\n\n```json\n{{\"ok\":true}}\n{{\"ok\":false}}\n```\n\n\
                 <!-- example: toml B=2 -->\n```toml\n[cron.x]\n```\n\
                 <!-- example: skip: needs a booted systemd -->\n```ini\n[Service]\n```\n"
            ),
        )
        .unwrap();
        assert_eq!(doc.layout, Layout::Checkout);
        assert_eq!(doc.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(doc.blocks.len(), 3);
        assert_eq!(doc.blocks[0].kind, Kind::Shell);
        assert_eq!(doc.blocks[0].text, "echo hi\n");
        assert_eq!(doc.blocks[0].line, 5);
        assert_eq!(
            doc.blocks[0].answers,
            Some(vec![json!({"ok": true}), json!({"ok": false})])
        );
        assert_eq!(
            doc.blocks[1].kind,
            Kind::Toml(vec![("B".into(), "2".into())])
        );
        assert!(matches!(&doc.blocks[2].kind, Kind::Skip(r) if r.contains("systemd")));
    }

    #[test]
    fn python_blocks_run_and_take_no_answers() {
        let doc = markdown(
            "t.md",
            &format!("{HEAD}```python\nprint(1)\n```\n\n```json\n{{}}\n```\n"),
        );
        assert!(doc.is_err(), "a json block answers only a sh block");
        let doc = markdown("t.md", &format!("{HEAD}```python\nprint(1)\n```\n")).unwrap();
        assert_eq!(doc.blocks[0].kind, Kind::Python);
        assert_eq!(doc.blocks[0].text, "print(1)\n");
    }

    #[test]
    fn an_unmarked_or_unjustified_block_is_an_error() {
        let unmarked = markdown("t.md", &format!("{HEAD}```bash\nls\n```\n")).unwrap_err();
        assert!(unmarked.contains("t.md:2"), "{unmarked}");
        let lone_json = markdown("t.md", &format!("{HEAD}text\n```json\n{{}}\n```\n"));
        assert!(lone_json.is_err());
        let no_reason = markdown(
            "t.md",
            &format!("{HEAD}<!-- example: skip: -->\n```sh\nls\n```\n"),
        );
        assert!(no_reason.unwrap_err().contains("say why"));
        assert!(
            markdown("t.md", "```sh\nls\n```\n")
                .unwrap_err()
                .contains("directive")
        );
        let page = ".\\\" examples: installed\n.Bd -literal -offset indent\nls\n.Ed\n";
        assert!(roff("t.8", page).unwrap_err().contains("t.8:2"));
    }

    #[test]
    fn roff_blocks_are_unescaped() {
        let page = ".\\\" examples: installed X=y\n.Pp\n.\\\" example: sh\n.Bd -literal -offset indent\n\
                    echo '{\\(dqa\\(dq:1}' \\e\n  | tr -d '\\en' \\(em\n.Ed\n";
        assert!(roff("t.8", page).is_err(), "an unknown escape is refused");
        let page = page.replace(" \\(em", "");
        let doc = roff("t.8", &page).unwrap();
        assert_eq!(doc.layout, Layout::Installed);
        assert_eq!(doc.blocks[0].text, "echo '{\"a\":1}' \\\n  | tr -d '\\n'\n");
        assert_eq!(doc.blocks[0].line, 5);
    }

    #[test]
    fn shapes_compare_keys_ok_and_codes() {
        let doc = json!({"ok": true, "job": {"id": "a", "tags": [{"x": 1}]}});
        let same = json!({"ok": true, "job": {"id": "b", "tags": [{"x": 2}, {"x": 3}]}});
        assert_eq!(same_shape(&doc, &same, "answer"), Ok(()));
        let extra = json!({"ok": true, "job": {"id": "b", "new": 1, "tags": []}});
        assert!(
            same_shape(&doc, &extra, "answer")
                .unwrap_err()
                .contains("new")
        );
        let failed = json!({"ok": false, "job": {"id": "b", "tags": []}});
        assert!(same_shape(&doc, &failed, "answer").is_err());
        let code = json!({"ok": false, "error": {"code": "conflict", "message": "m"}});
        let other = json!({"ok": false, "error": {"code": "not_found", "message": "n"}});
        assert!(same_shape(&code, &other, "answer").is_err());
    }
}
