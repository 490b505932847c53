//! Where log lines go (journald, text or JSON on stderr) and the level that
//! can be changed while the daemon runs (`log_level` admin command).
//!
//! Under journald every span and event field becomes a journal field
//! prefixed `CRONQ_`: a span `job{job_id, job_type, cron_id, attempt,
//! duration_ms}` gives `CRONQ_JOB_ID`, `CRONQ_JOB_TYPE`, `CRONQ_CRON_ID`,
//! `CRONQ_ATTEMPT` and `CRONQ_DURATION_MS` on every line logged inside it, so
//! `journalctl -u cronq CRONQ_JOB_TYPE=email` works. The prefix is not
//! optional: tracing-journald's default `F_` would hide them, and a bare
//! `JOB_ID` would collide with systemd's own field of that name.
//! tracing-journald upper-cases field names but writes the prefix as given,
//! so the prefix itself must be upper case (journald drops lower-case names).
//!
//! On stderr every record is one line: `text` escapes line breaks in
//! messages and fields (`text`), and `json` writes span fields at the top
//! level of each object, with their JSON types (`json`).
//!
//! The level is a single `LevelFilter` behind `tracing_subscriber::reload`
//! rather than an `EnvFilter`: `LOG_LEVEL` is one of five words, and a
//! single atomic-ish filter keeps the per-event cost to one comparison.

mod json;
mod text;

use std::io::IsTerminal;
use std::os::fd::{AsRawFd, RawFd};

use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::LogFormat;

/// The journal identifier (`SYSLOG_IDENTIFIER=`), fixed so that
/// `journalctl -t cronq` works whatever the binary was called.
pub const SYSLOG_IDENTIFIER: &str = "cronq";

/// Prefix of cronq's own journal fields (`CRONQ_JOB_ID`, ...).
pub const FIELD_PREFIX: &str = "CRONQ";

/// The levels `LOG_LEVEL` and `log_level` accept, quietest first.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Where log lines actually go, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Journald,
    Text,
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("LOG_LEVEL={0:?} is invalid: expected one of error, warn, info, debug, trace")]
    BadLevel(String),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadySet(String),
}

type Base = Layered<reload::Layer<LevelFilter, Registry>, Registry>;
type BoxedLayer = Box<dyn Layer<Base> + Send + Sync>;

/// Changes the level of the installed subscriber at run time. Cheap to
/// clone; the admin server holds one.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<LevelFilter, Registry>,
    output: Output,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl")
            .field("level", &self.level())
            .field("output", &self.output)
            .finish()
    }
}

impl LogControl {
    /// Sets the level (`error`, `warn`, `info`, `debug` or `trace`, any case)
    /// and answers the level now in force, or an error sentence for the
    /// `log_level` command's `bad_request`.
    pub fn set_level(&self, level: &str) -> Result<String, String> {
        let filter = parse_level(level).ok_or_else(|| {
            format!("level must be one of error, warn, info, debug, trace, not {level:?}")
        })?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        Ok(self.level())
    }

    /// The level in force, as one of [`LEVELS`].
    pub fn level(&self) -> String {
        self.handle
            .clone_current()
            .map(level_name)
            .unwrap_or("off")
            .to_string()
    }

    /// Where lines go (journald, or stderr as text or JSON).
    pub fn output(&self) -> Output {
        self.output
    }
}

/// Installs the global subscriber for `format` and `level` (from
/// `Config::log_format` and `Config::log_level`) and returns its level
/// handle. Records of the `log` crate (r2d2, rustls) are forwarded too, at
/// most as verbose as the start-up level.
pub fn init(format: LogFormat, level: &str) -> Result<LogControl, LoggingError> {
    let (dispatch, control) = build(format, level)?;
    dispatch
        .try_init()
        .map_err(|e| LoggingError::AlreadySet(e.to_string()))?;
    Ok(control)
}

/// Builds the subscriber without installing it (tests, embedders with their
/// own dispatch). When journald was asked for but its socket is missing, the
/// lines go to stderr as text and one warning says so.
pub fn build(format: LogFormat, level: &str) -> Result<(Dispatch, LogControl), LoggingError> {
    let filter = parse_level(level).ok_or_else(|| LoggingError::BadLevel(level.to_string()))?;
    let wanted = resolve(format, under_journald());
    let (output, layer, fallback) = match output_layer(wanted, BoxMakeWriter::new(std::io::stderr))
    {
        Ok(layer) => (wanted, layer, None),
        Err(e) => {
            // Only journald can fail: its socket is missing.
            let layer = text_layer(BoxMakeWriter::new(std::io::stderr), true);
            (Output::Text, layer, Some(e))
        }
    };
    let (dispatch, control) = assemble(filter, output, layer);
    if let Some(e) = fallback {
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(
                error = %e,
                "journald's socket /run/systemd/journal/socket is not usable; logging to stderr instead ({e})"
            );
        });
    }
    Ok((dispatch, control))
}

/// `auto` means journald when stderr is the journal stream systemd set up.
pub fn resolve(format: LogFormat, under_journald: bool) -> Output {
    match format {
        LogFormat::Journald => Output::Journald,
        LogFormat::Text => Output::Text,
        LogFormat::Json => Output::Json,
        LogFormat::Auto if under_journald => Output::Journald,
        LogFormat::Auto => Output::Text,
    }
}

/// Whether stderr is connected to the journal: `JOURNAL_STREAM` is set and
/// names stderr's device and inode, as systemd.exec(5) recommends checking
/// (a child whose stderr was redirected inherits the variable but not the
/// stream).
pub fn under_journald() -> bool {
    std::env::var("JOURNAL_STREAM")
        .is_ok_and(|v| journal_stream_matches(std::io::stderr().as_raw_fd(), &v))
}

fn journal_stream_matches(fd: RawFd, value: &str) -> bool {
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}

/// The first line of `text`, with "…" when more follows: what a log
/// message says of an error whose whole text is in a field beside it.
pub fn first_line(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.trim_start();
    match text.split_once('\n') {
        Some((first, rest)) if !rest.trim().is_empty() => format!("{} …", first.trim_end()).into(),
        Some((first, _)) => first.trim_end().into(),
        None => text.into(),
    }
}

fn parse_level(level: &str) -> Option<LevelFilter> {
    match level.trim().to_ascii_lowercase().as_str() {
        "error" => Some(LevelFilter::ERROR),
        "warn" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

fn level_name(filter: LevelFilter) -> &'static str {
    match filter {
        LevelFilter::ERROR => "error",
        LevelFilter::WARN => "warn",
        LevelFilter::INFO => "info",
        LevelFilter::DEBUG => "debug",
        LevelFilter::TRACE => "trace",
        _ => "off",
    }
}

fn assemble(filter: LevelFilter, output: Output, layer: BoxedLayer) -> (Dispatch, LogControl) {
    let (filter, handle) = reload::Layer::new(filter);
    let subscriber = Registry::default().with(filter).with(layer);
    (Dispatch::new(subscriber), LogControl { handle, output })
}

fn output_layer(output: Output, writer: BoxMakeWriter) -> std::io::Result<BoxedLayer> {
    match output {
        Output::Journald => Ok(journald_layer()?.boxed()),
        Output::Text => Ok(text_layer(writer, false)),
        Output::Json => Ok(tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::FlatJson)
            .with_writer(writer)
            .boxed()),
    }
}

fn text_layer(writer: BoxMakeWriter, may_colour: bool) -> BoxedLayer {
    tracing_subscriber::fmt::layer()
        .fmt_fields(text::EscapedFields)
        .with_ansi(may_colour && std::io::stderr().is_terminal())
        .with_writer(writer)
        .boxed()
}

fn journald_layer() -> std::io::Result<tracing_journald::Layer> {
    // syslog's meanings rather than the crate's default, which files INFO as
    // NOTICE: `journalctl -p info` then shows what LOG_LEVEL=info shows.
    let mut priorities = tracing_journald::PriorityMappings::new();
    priorities.info = tracing_journald::Priority::Informational;
    priorities.debug = tracing_journald::Priority::Debug;
    priorities.trace = tracing_journald::Priority::Debug;
    Ok(tracing_journald::layer()?
        .with_field_prefix(Some(FIELD_PREFIX.to_string()))
        .with_syslog_identifier(SYSLOG_IDENTIFIER.to_string())
        .with_priority_mappings(priorities))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn captured(output: Output, level: &str) -> (Dispatch, LogControl, Captured) {
        let out = Captured::default();
        let w = out.clone();
        let layer = output_layer(output, BoxMakeWriter::new(move || w.clone())).unwrap();
        let (dispatch, control) = assemble(parse_level(level).unwrap(), output, layer);
        (dispatch, control, out)
    }

    #[test]
    fn level_changes_at_run_time() {
        let (dispatch, control, out) = captured(Output::Text, "info");
        assert_eq!(control.level(), "info");
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("hidden");
            assert_eq!(control.set_level("DEBUG"), Ok("debug".to_string()));
            tracing::debug!("shown");
            assert_eq!(control.set_level(" error "), Ok("error".to_string()));
            tracing::warn!("hidden too");
        });
        let text = out.text();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains("shown"), "{text}");
        assert_eq!(control.level(), "error");
    }

    #[test]
    fn bad_levels_are_refused_with_the_choices() {
        let (_d, control, _out) = captured(Output::Text, "info");
        for bad in ["", "verbose", "off", "warning", "3"] {
            let e = control.set_level(bad).unwrap_err();
            assert!(e.contains("error, warn, info, debug, trace"), "{e}");
        }
        assert_eq!(control.level(), "info");
        for good in LEVELS {
            assert_eq!(control.set_level(good).as_deref(), Ok(good));
        }
        assert!(matches!(
            build(LogFormat::Text, "loud"),
            Err(LoggingError::BadLevel(_))
        ));
    }

    #[test]
    fn json_lines_carry_span_fields_at_the_top_level_with_their_types() {
        let (dispatch, _control, out) = captured(Output::Json, "info");
        tracing::dispatcher::with_default(&dispatch, || {
            let outer = tracing::info_span!("cron", cron_id = "nightly", attempt = 9);
            let _o = outer.enter();
            let span = tracing::info_span!(
                "job",
                job_id = "abc",
                job_type = "noop",
                attempt = 1,
                duration_ms = tracing::field::Empty
            );
            let _e = span.enter();
            span.record("duration_ms", 5u64);
            let pid: Option<i32> = Some(18458);
            let none: Option<i32> = None;
            tracing::info!(pid, none, ok = true, error = %"two\nlines", "job finished");
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "job finished");
        assert_eq!(line["job_id"], "abc");
        assert_eq!(line["job_type"], "noop");
        assert_eq!(line["cron_id"], "nightly");
        assert_eq!(line["attempt"], 1, "the inner span wins");
        assert_eq!(line["duration_ms"], 5, "recorded later, still there");
        assert_eq!(line["pid"], 18458);
        assert!(line.get("none").is_none(), "{line}");
        assert_eq!(line["ok"], true);
        assert_eq!(line["error"], "two\nlines");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }

    #[test]
    fn a_text_record_is_one_line() {
        let (dispatch, _control, out) = captured(Output::Text, "info");
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("job", job_id = "abc", job_type = "noop");
            let _e = span.enter();
            let pid: Option<i32> = Some(7);
            tracing::warn!(
                pid,
                stdout_tail = %"line one\nline two\n",
                "job failed:\nsecond line"
            );
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("job failed:\\nsecond line"), "{text}");
        assert!(
            text.contains("stdout_tail=line one\\nline two\\n"),
            "{text}"
        );
        assert!(text.contains("job_id=\"abc\""), "{text}");
        assert!(text.contains("pid=7"), "{text}");
        assert!(!text.contains("Some("), "{text}");
    }

    #[test]
    fn first_lines() {
        assert_eq!(first_line("one"), "one");
        assert_eq!(first_line("one\n"), "one");
        assert_eq!(first_line("one \ntwo\nthree"), "one …");
        assert_eq!(first_line("\n  one\n  \n"), "one");
    }

    #[test]
    fn auto_means_journald_only_under_it() {
        assert_eq!(resolve(LogFormat::Auto, true), Output::Journald);
        assert_eq!(resolve(LogFormat::Auto, false), Output::Text);
        assert_eq!(resolve(LogFormat::Json, true), Output::Json);
        assert_eq!(resolve(LogFormat::Journald, false), Output::Journald);
    }

    #[test]
    fn journal_stream_must_name_the_fd() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("stream")).unwrap();
        let other = std::fs::File::create(dir.path().join("other")).unwrap();
        let m = f.metadata().unwrap();
        let value = format!("{}:{}", m.dev(), m.ino());
        assert!(journal_stream_matches(f.as_raw_fd(), &value));
        assert!(!journal_stream_matches(other.as_raw_fd(), &value));
        assert!(!journal_stream_matches(f.as_raw_fd(), "garbage"));
        assert!(!journal_stream_matches(f.as_raw_fd(), ""));
    }
}
