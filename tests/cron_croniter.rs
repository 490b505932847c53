//! Differential test of cronq's schedules against an independent
//! implementation: Python's croniter with `implement_cron_bug=True`, which
//! combines the day fields as cronie does (a field starting with `*` makes
//! both apply; otherwise either suffices), so that a crontab moved from
//! cronie fires on the same minutes.
//!
//! Thousands of random expressions (values, ranges, steps, lists, names,
//! leading zeros, tabs, macros, and `L`, `nW`, `d#n`, `dL`) with random start
//! times are sent to one Python process (`support/croniter_next.py`); the
//! next fire times in UTC must be equal, and an expression cronq refuses as
//! never firing must find no time in croniter either. Randomness is seeded:
//! the seed is printed, `CRONQ_CRON_DIFF_SEED` replays one, and
//! `CRONQ_CRON_DIFF_CASES` changes how many cases run.
//!
//! Left out, because croniter itself differs from cronie there (or has no
//! such syntax), each checked in `src/cron/schedule/tests.rs` instead:
//! - ranges with equal ends (`5-5`, `MON-MON`): croniter reads them as the
//!   whole field, cronie as the one value;
//! - `*` after the first item of a day field (`5,*`): croniter then collapses
//!   a full other day field to `*`, which changes the day rule;
//! - `nW` with a restricted day-of-week not starting with `*`, and `d#n` or
//!   `dL` with a restricted day-of-month not starting with `*`: croniter
//!   intersects them where cronq (cronie's OR) takes either;
//! - `LW` and `L-n`, which croniter does not have, and weekday ranges ending
//!   on Sunday with a step (`5-0/2`), which cronq refuses.
//!
//! cronie has no `L`, `W` or `#`; for those the reference is croniter's
//! reading of Quartz, which is cronq's.

#[path = "support/tools.rs"]
mod tools;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use cronq::cron::schedule::{Schedule, ScheduleError};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

const DEFAULT_SEED: u64 = 20_260_501;
const DEFAULT_CASES: usize = 3_000;
/// Fire times compared per case.
const COUNT: usize = 6;

#[test]
fn cronq_fires_on_the_same_minutes_as_croniter_in_cronie_mode() {
    let Some(python) = tools::python_with("croniter") else {
        return;
    };
    let seed = env_number("CRONQ_CRON_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("CRONQ_CRON_DIFF_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    eprintln!("croniter differential: seed {seed}, {cases} cases (CRONQ_CRON_DIFF_SEED={seed})");

    let mut generator = Generator {
        rng: fastrand::Rng::with_seed(seed),
    };
    let cases: Vec<Case> = (0..cases).map(|_| generator.case()).collect();
    let (version, answers) = croniter_answers(&python, &cases);
    eprintln!("croniter {version}");

    let mut mismatches = Vec::new();
    let mut never = 0;
    for (case, answer) in cases.iter().zip(&answers) {
        let ours = cronq_answer(case);
        if ours.never {
            never += 1;
        }
        if let Some(why) = differ(&ours, answer) {
            mismatches.push((case, ours, answer, why));
        }
    }
    eprintln!(
        "{} cases compared, {never} never firing, {} mismatches; {}",
        cases.len(),
        mismatches.len(),
        coverage(&cases)
    );
    if let Some((case, ours, theirs, why)) = mismatches.first() {
        let theirs = match theirs.get("error") {
            Some(error) => format!("refused: {error}"),
            None => {
                describe(&times_of(theirs))
                    + if theirs["never"] == true {
                        " (then none)"
                    } else {
                        ""
                    }
            }
        };
        panic!(
            "{} of {} cases differ (seed {seed}; rerun with CRONQ_CRON_DIFF_SEED={seed}); the first: {why}\n  \
             expression: {:?}\n  after:      {}\n  cronq:      {}\n  croniter:   {}",
            mismatches.len(),
            cases.len(),
            case.expr,
            Timestamp::from_second(case.start).expect("start"),
            ours.describe(),
            theirs
        );
    }
}

/// How many cases exercise each day rule and special form, so that a
/// generator change that stops covering one shows in the output.
fn coverage(cases: &[Case]) -> String {
    let (mut both, mut either, mut w, mut nth, mut last) = (0, 0, 0, 0, 0);
    for case in cases {
        let fields: Vec<&str> = case
            .expr
            .split([' ', '\t'])
            .filter(|f| !f.is_empty())
            .collect();
        let [_, _, dom, _, dow] = fields[..] else {
            continue;
        };
        let star = |f: &str| f.starts_with('*');
        match (dom == "*" || dow == "*", star(dom) || star(dow)) {
            (false, true) => both += 1,
            (false, false) => either += 1,
            _ => {}
        }
        w += usize::from(dom.ends_with('W'));
        nth += usize::from(dow.contains('#'));
        last += usize::from(dom == "L" || dow.ends_with(['L', 'l']));
    }
    format!(
        "both day fields restricted: {both} with a leading * (AND), {either} without (OR); \
         nW {w}, d#n {nth}, L {last}"
    )
}

fn env_number(var: &str) -> Option<u64> {
    let text = std::env::var(var).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a number")),
    )
}

struct Case {
    expr: String,
    start: i64,
}

/// What cronq says of a case: its fire times, or that it never fires.
struct Ours {
    times: Vec<i64>,
    never: bool,
}

impl Ours {
    fn describe(&self) -> String {
        if self.never {
            return "refused: never fires".to_string();
        }
        describe(&self.times)
    }
}

/// Fire times as "Mon 2026-01-05 09:00, ...", in UTC.
fn describe(times: &[i64]) -> String {
    let times: Vec<String> = times
        .iter()
        .map(|t| {
            Timestamp::from_second(*t)
                .expect("time")
                .strftime("%a %Y-%m-%d %H:%M")
                .to_string()
        })
        .collect();
    times.join(", ")
}

fn times_of(answer: &Value) -> Vec<i64> {
    answer["next"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn cronq_answer(case: &Case) -> Ours {
    let schedule = match Schedule::parse(&case.expr) {
        Ok(schedule) => schedule,
        Err(ScheduleError::NeverFires { .. }) => {
            return Ours {
                times: Vec::new(),
                never: true,
            };
        }
        // The generator writes only what cronq documents: a refusal is a bug
        // here or there.
        Err(e) => panic!("cronq refused generated expression {:?}: {e}", case.expr),
    };
    let start = Timestamp::from_second(case.start).expect("start time");
    let times = schedule
        .upcoming(start, &TimeZone::UTC, COUNT)
        .into_iter()
        .map(|t| t.as_second())
        .collect();
    Ours {
        times,
        never: false,
    }
}

/// Why cronq's answer and croniter's differ, if they do.
fn differ(ours: &Ours, theirs: &Value) -> Option<String> {
    if let Some(error) = theirs.get("error") {
        return Some(format!("croniter refused it: {error}"));
    }
    let times = times_of(theirs);
    let croniter_never = theirs["never"].as_bool() == Some(true) && times.is_empty();
    match (ours.never, croniter_never) {
        (true, true) => None,
        (true, false) => Some("cronq says it never fires".to_string()),
        (false, true) => Some("croniter finds no time".to_string()),
        (false, false) if ours.times != times => Some("the fire times differ".to_string()),
        (false, false) => None,
    }
}

/// Runs every case through one croniter process; returns its version and one
/// answer per case, in order.
fn croniter_answers(python: &std::path::Path, cases: &[Case]) -> (String, Vec<Value>) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/croniter_next.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start croniter_next.py");
    let mut stdin = child.stdin.take().expect("stdin");
    let input: String = cases
        .iter()
        .map(|c| {
            format!(
                "{}\n",
                json!({"expr": c.expr, "start": c.start, "count": COUNT})
            )
        })
        .collect();
    // Written from a thread so that a full stdout pipe cannot stall both.
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).expect("write cases");
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || -> Value {
        let line = lines
            .next()
            .expect("croniter_next.py ended early")
            .expect("read");
        serde_json::from_str(&line).expect("a JSON line")
    };
    let version = next()["croniter"].as_str().unwrap_or("?").to_string();
    let answers = cases.iter().map(|_| next()).collect();
    writer.join().expect("writer");
    assert!(
        child.wait().expect("wait").success(),
        "croniter_next.py failed"
    );
    (version, answers)
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Random expressions in the part of the grammar both sides read alike.
struct Generator {
    rng: fastrand::Rng,
}

/// One field's bounds and names, for the plain items (values, ranges,
/// steps, lists).
struct Span {
    min: u32,
    max: u32,
    /// Where `*` and `a/step` end: Saturday (6) for weekdays, as in cronie.
    last: u32,
    /// The largest step cronq accepts.
    max_step: u32,
    names: &'static [&'static str],
    /// Day fields: `*` only as the first item (see the module doc).
    star_first_only: bool,
}

const MINUTE: Span = Span {
    min: 0,
    max: 59,
    last: 59,
    max_step: 59,
    names: &[],
    star_first_only: false,
};
const HOUR: Span = Span {
    min: 0,
    max: 23,
    last: 23,
    max_step: 23,
    names: &[],
    star_first_only: false,
};
const DAY: Span = Span {
    min: 1,
    max: 31,
    last: 31,
    max_step: 30,
    names: &[],
    star_first_only: true,
};
const MONTH: Span = Span {
    min: 1,
    max: 12,
    last: 12,
    max_step: 11,
    names: &MONTHS,
    star_first_only: false,
};
const WEEKDAY: Span = Span {
    min: 0,
    max: 7,
    last: 6,
    max_step: 6,
    names: &WEEKDAYS,
    star_first_only: true,
};

impl Generator {
    fn case(&mut self) -> Case {
        // 2000-01-01 to 2099-12-31, a third of them on a whole minute (a
        // fire time itself must not be returned again).
        let mut start = self.rng.i64(946_684_800..4_102_444_800);
        if self.rng.u8(0..3) == 0 {
            start -= start % 60;
        }
        Case {
            expr: self.expr(),
            start,
        }
    }

    fn expr(&mut self) -> String {
        if self.rng.u8(0..40) == 0 {
            let macros = [
                "@hourly",
                "@daily",
                "@midnight",
                "@weekly",
                "@monthly",
                "@yearly",
            ];
            return macros[self.rng.usize(0..macros.len())].to_string();
        }
        let minute = self.sparse(&MINUTE);
        let hour = self.sparse(&HOUR);
        let month = if self.rng.bool() {
            "*".to_string()
        } else {
            self.list(&MONTH)
        };
        let (dom, dow) = self.days();
        let fields = [minute, hour, dom, month, dow];
        let mut expr = String::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                expr.push_str(match self.rng.u8(0..10) {
                    0 => "\t",
                    1 => "  ",
                    _ => " ",
                });
            }
            expr.push_str(field);
        }
        expr
    }

    /// Minute and hour: mostly one value or a few, so that consecutive fire
    /// times are days apart and the day rules are what is compared.
    fn sparse(&mut self, span: &Span) -> String {
        match self.rng.u8(0..10) {
            0..=4 => self.number(span.min, span.max, span),
            5 => "*".to_string(),
            _ => self.list(span),
        }
    }

    /// The two day fields, kept to the combinations croniter reads as cronie
    /// (or, for `L`, `W` and `#`, as Quartz) does.
    fn days(&mut self) -> (String, String) {
        let dom = match self.rng.u8(0..20) {
            0..=5 => "*".to_string(),
            6 => "L".to_string(),
            7 | 8 => format!("{}W", self.rng.u32(1..=31)),
            _ => self.list(&DAY),
        };
        let dom_star = dom.starts_with('*');
        let dom_w = dom.ends_with('W');
        let dow = match self.rng.u8(0..20) {
            0..=6 => "*".to_string(),
            7 | 8 if dom_star => format!("{}#{}", self.rng.u32(0..=7), self.rng.u32(1..=5)),
            9 if dom_star => format!("{}{}", self.rng.u32(0..=7), self.pick(&["L", "l"])),
            _ if dom_w => format!("*/{}", self.rng.u32(1..=6)),
            _ => self.list(&WEEKDAY),
        };
        (dom, dow)
    }

    /// One to three items joined by commas.
    fn list(&mut self, span: &Span) -> String {
        let n = match self.rng.u8(0..10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let items: Vec<String> = (0..n).map(|i| self.item(span, i == 0)).collect();
        items.join(",")
    }

    fn item(&mut self, span: &Span, first: bool) -> String {
        let star_ok = first || !span.star_first_only;
        match self.rng.u8(0..12) {
            0 if star_ok => "*".to_string(),
            1 | 2 if star_ok => format!("*/{}", self.rng.u32(1..=span.max_step)),
            0..=4 => self.number(span.min, span.max, span),
            5..=7 => {
                let (a, b) = self.range(span);
                // Sunday closes a weekday range as SUN only after a later
                // start: SUN-SUN is Sunday alone, 0-7 the whole week.
                let end = if b == 7 && a == 0 {
                    "7".to_string()
                } else {
                    self.name_or_number(b, span)
                };
                format!("{}-{end}", self.name_or_number(a, span))
            }
            8 | 9 => {
                let (a, b) = self.range(span);
                // A step on a range ending on Sunday is written with 7.
                let end = if b == 7 {
                    "7".to_string()
                } else {
                    self.name_or_number(b, span)
                };
                format!(
                    "{}-{end}/{}",
                    self.name_or_number(a, span),
                    self.rng.u32(1..=span.max_step)
                )
            }
            _ => format!(
                "{}/{}",
                self.number(span.min, span.last, span),
                self.rng.u32(1..=span.max_step)
            ),
        }
    }

    /// `a < b`: equal ends mean the whole field to croniter (module doc).
    fn range(&mut self, span: &Span) -> (u32, u32) {
        let a = self.rng.u32(span.min..span.max);
        let b = self.rng.u32(a + 1..=span.max);
        (a, b)
    }

    fn number(&mut self, min: u32, max: u32, span: &Span) -> String {
        let value = self.rng.u32(min..=max);
        self.name_or_number(value, span)
    }

    /// A value as a number (now and then with a leading zero), or as a name
    /// in any case where the field has names.
    fn name_or_number(&mut self, value: u32, span: &Span) -> String {
        if !span.names.is_empty() && self.rng.u8(0..3) == 0 {
            let name = span.names[(value - span.min) as usize];
            return match self.rng.u8(0..3) {
                0 => name.to_string(),
                1 => name.to_ascii_lowercase(),
                _ => {
                    let (head, tail) = name.split_at(1);
                    format!("{head}{}", tail.to_ascii_lowercase())
                }
            };
        }
        if value < 10 && self.rng.u8(0..8) == 0 {
            format!("0{value}")
        } else {
            value.to_string()
        }
    }

    fn pick(&mut self, options: &[&'static str]) -> &'static str {
        options[self.rng.usize(0..options.len())]
    }
}
