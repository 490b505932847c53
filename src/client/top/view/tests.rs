//! Snapshots of each pane and of whole screens, rendered from a fixed state
//! at a fixed time into ratatui's `TestBackend`, at 80x24 and 160x48.
//! `INSTA_UPDATE=always cargo test --lib client::top::view` rewrites them
//! after a deliberate change; read the diff before committing it.

use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use serde_json::json;

use super::*;
use crate::client::top::input::Ui;
use crate::client::top::state::{Link, Poll, State, Watch};
use crate::client::top::throughput::Counter;
use crate::client::top::wire::Event;

const NOW: &str = "2026-01-01T12:00:00.000Z";
const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// A daemon mid-afternoon: four types, three running jobs (with and
/// without progress), three crons, failures dead and retrying, and a
/// minute of throughput.
fn busy() -> State {
    let mut s = State::new("/run/cronq/admin.sock".into());
    s.watch = Watch::Live;
    s.apply_poll(
        Poll {
            status: Some(json!({"version": "0.1.0", "backend": "sqlite", "db": "/var/lib/cronq/cronq.db",
                "uptime_s": 93_784, "workers": {"busy": 3, "max": 5}, "paused": ["email"],
                "queue": {"pending": 1240, "scheduled": 17, "running": 3, "dead": 4}})),
            stats: Some(json!({"types": {
                "command": {"pending": 0, "scheduled": 2, "running": 1, "dead": 1, "succeeded": 310, "failed": 3, "p50_ms": 840.0, "p95_ms": 2100.0},
                "data_processing": {"pending": 40, "scheduled": 0, "running": 1, "dead": 0, "succeeded": 52, "failed": 0, "p50_ms": 15200.0, "p95_ms": 61000.0},
                "email": {"pending": 1200, "scheduled": 15, "running": 1, "dead": 3, "succeeded": 98_000, "failed": 41, "p50_ms": 120.0, "p95_ms": 480.0},
                "noop": {"pending": 0, "scheduled": 0, "running": 0, "dead": 0, "succeeded": 1_000_000, "failed": 0, "p50_ms": 0.2, "p95_ms": 0.4}},
                "oldest_pending_age_s": 42.7})),
            crons: Some(json!({"crons": [
                {"id": "nightly_report", "schedule": "0 2 * * *", "timezone": "Europe/Berlin", "enabled": true,
                 "description": "Mail the nightly report", "next_run": "2026-01-02T01:00:00.000Z",
                 "last_run": {"scheduled_for": "2026-01-01T01:00:00.000Z", "started": "2026-01-01T01:00:00.003Z", "status": "failed", "duration_ms": 1250, "error": "SMTP 554 rejected\nmore"}},
                {"id": "system_queue", "schedule": "* * * * *", "timezone": "UTC", "enabled": true,
                 "description": "Processes jobs from the database queue", "next_run": "2026-01-01T12:00:42.000Z",
                 "last_run": {"scheduled_for": "2026-01-01T11:59:42.000Z", "started": "2026-01-01T11:59:42.001Z", "status": "ok", "duration_ms": 3}},
                {"id": "weekly_cleanup", "schedule": "0 4 * * 0", "timezone": "UTC", "enabled": false, "next_run": null, "last_run": null}]})),
            running: Some(json!({"jobs": []})),
            dead: Some(json!({"jobs": [{"id": "d7f3k2m9q1x8z0a", "name": "welcome_email", "type": "email", "attempts": 4,
                "updated": "2026-01-01T11:52:10.000Z", "last_error": "550 5.1.1 mailbox unavailable\nsecond line"}]})),
            scheduled: Some(json!({"jobs": []})),
            ..Poll::default()
        },
        now(),
    );
    let started = |id: &str, name: &str, ty: &str, attempt: u32, at: &str| {
        Event::parse(
            json!({"event": "started", "at": at, "job": {"id": id, "name": name, "type": ty, "attempt": attempt}})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    };
    s.apply_event(
        started(
            "e1x9k2m4p7q0r3s",
            "export_orders",
            "data_processing",
            1,
            "2026-01-01T11:56:30.000Z",
        ),
        now(),
    );
    s.apply_event(
        started(
            "c4b8n1v5z2x7m3q",
            "rebuild_index",
            "command",
            2,
            "2026-01-01T11:59:48.000Z",
        ),
        now(),
    );
    s.apply_event(
        started(
            "m2q7w3e8r4t9y5u",
            "welcome_email",
            "email",
            1,
            "2026-01-01T11:59:59.000Z",
        ),
        now(),
    );
    let progress = json!({"event": "progress", "job": {"id": "e1x9k2m4p7q0r3s"},
        "progress": {"done": 620_000, "total": 1_000_000, "message": "rows written"}});
    s.apply_event(
        Event::parse(progress.to_string().as_bytes()).unwrap(),
        now(),
    );
    let progress = json!({"event": "progress", "job": {"id": "c4b8n1v5z2x7m3q"},
        "progress": {"done": 37, "total": null, "message": null}});
    s.apply_event(
        Event::parse(progress.to_string().as_bytes()).unwrap(),
        now(),
    );
    let failed = json!({"event": "failed", "at": "2026-01-01T11:58:01.000Z",
        "job": {"id": "f5g6h7j8k9l0z1x", "name": "invoice_mail", "type": "email", "attempt": 2},
        "retry_at": "2026-01-01T11:58:21.000Z", "error": "451 4.7.1 try again later"});
    s.apply_event(Event::parse(failed.to_string().as_bytes()).unwrap(), now());
    let second = now().as_second();
    for back in 1..=60i64 {
        let n = (back * 37 % 23) as u64;
        s.throughput
            .add(second - back, Counter::Started, 100 + n * 10);
        s.throughput
            .add(second - back, Counter::Succeeded, 95 + n * 10);
        s.throughput.add(
            second - back,
            Counter::Failed,
            if back % 7 == 0 { 5 } else { 0 },
        );
    }
    s
}

fn render(width: u16, height: u16, draw_fn: impl Fn(&mut ratatui::Frame)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw_fn(f)).unwrap();
    terminal
}

fn screen(state: &State, ui: &Ui, colour: bool, (w, h): (u16, u16)) -> Terminal<TestBackend> {
    let scene = Scene {
        state,
        ui,
        now: now(),
        theme: Theme { colour },
    };
    render(w, h, |f| draw(f, &scene))
}

fn text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

#[test]
fn each_pane_at_both_sizes() {
    let state = busy();
    let ui = Ui::default();
    for (w, h) in SIZES {
        let scene = Scene {
            state: &state,
            ui: &ui,
            now: now(),
            theme: Theme { colour: false },
        };
        for pane in Pane::ALL {
            let t = render(w, h, |f| draw_pane(f, f.area(), &scene, pane));
            insta::assert_snapshot!(format!("pane_{pane:?}_{w}x{h}"), text(&t));
        }
        let t = render(w, h, |f| panes::throughput(f, f.area(), &scene));
        insta::assert_snapshot!(format!("pane_throughput_{w}x{h}"), text(&t));
    }
}

#[test]
fn whole_screen_at_both_sizes() {
    let state = busy();
    for size in SIZES {
        let t = screen(&state, &Ui::default(), true, size);
        insta::assert_snapshot!(format!("screen_live_{}x{}", size.0, size.1), text(&t));
    }
}

#[test]
fn polling_fallback_and_an_unreachable_daemon() {
    let mut state = busy();
    state.watch = Watch::Unsupported;
    state.say(
        "retry d7f3k2m9q1x8z0a: job d7f3k2m9q1x8z0a is pending again",
        false,
    );
    let t = screen(&state, &Ui::default(), false, (80, 24));
    insta::assert_snapshot!("screen_polling_80x24", text(&t));
    assert!(text(&t).contains("live events unavailable"));

    state.link = Link::Down {
        error: "Connection refused (os error 111)".into(),
        retry_at: "2026-01-01T12:00:04.000Z".parse().unwrap(),
    };
    let t = screen(&state, &Ui::default(), false, (80, 24));
    insta::assert_snapshot!("screen_unreachable_80x24", text(&t));
}

#[test]
fn before_the_first_answer() {
    let state = State::new("/run/cronq/admin.sock".into());
    let t = screen(&state, &Ui::default(), false, (80, 24));
    insta::assert_snapshot!("screen_connecting_80x24", text(&t));
}

#[test]
fn overlays() {
    let state = busy();
    let mut ui = Ui {
        mode: Mode::Help,
        ..Ui::default()
    };
    insta::assert_snapshot!(
        "overlay_help_80x24",
        text(&screen(&state, &ui, false, (80, 24)))
    );
    ui.mode = Mode::Confirm {
        id: "e1x9k2m4p7q0r3s".into(),
        name: "export_orders".into(),
    };
    insta::assert_snapshot!(
        "overlay_confirm_80x24",
        text(&screen(&state, &ui, false, (80, 24)))
    );
    ui.mode = Mode::Detail {
        title: "job d7f3k2m9q1x8z0a".into(),
        answer: json!({"ok": true, "job": {"id": "d7f3k2m9q1x8z0a", "name": "welcome_email", "type": "email",
            "status": "dead", "attempts": 4, "max_attempts": 4, "priority": 0,
            "run_at": "2026-01-01T11:52:00.000Z", "created": "2026-01-01T11:40:00.000Z",
            "updated": "2026-01-01T11:52:10.000Z", "last_error": "550 5.1.1 mailbox unavailable",
            "payload": {"type": "email", "data": {"to": "a@example.com"}}},
            "errors": [{"attempt": 4, "at": "2026-01-01T11:52:10.000Z", "error": "550 5.1.1 mailbox unavailable"}]}),
        render: crate::client::commands::jobs::render_job,
        scroll: 0,
    };
    for size in SIZES {
        insta::assert_snapshot!(
            format!("overlay_detail_{}x{}", size.0, size.1),
            text(&screen(&state, &ui, false, size))
        );
    }
    ui.mode = Mode::Filter {
        input: "mail".into(),
    };
    ui.filter = Some("mail".into());
    insta::assert_snapshot!(
        "screen_filter_80x24",
        text(&screen(&state, &ui, false, (80, 24)))
    );
}

#[test]
fn a_tiny_terminal_says_so() {
    let t = screen(&busy(), &Ui::default(), false, (30, 8));
    assert!(text(&t).contains("cronq top needs 40x10"), "{}", text(&t));
}

/// With `NO_COLOR` no cell carries a colour; with colour some do (so this
/// test can fail), and the text is the same either way.
#[test]
fn no_colour_means_no_colour_and_the_same_text() {
    let state = busy();
    let plain = screen(&state, &Ui::default(), false, (160, 48));
    let colour = screen(&state, &Ui::default(), true, (160, 48));
    let coloured = |t: &Terminal<TestBackend>| {
        t.backend()
            .buffer()
            .content
            .iter()
            .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
            .count()
    };
    assert_eq!(coloured(&plain), 0);
    assert!(coloured(&colour) > 0);
    assert_eq!(text(&plain), text(&colour));
}

#[test]
fn rows_are_shared_out_focused_pane_first() {
    assert_eq!(share(18, &[7, 4, 6, 3], Some(1)), [6, 4, 5, 3]);
    assert_eq!(share(30, &[4, 4, 4, 4], None), [4, 4, 4, 18]);
    assert_eq!(share(8, &[10, 10, 10, 10], Some(0)), [2, 2, 2, 2]);
}

#[test]
fn clocks_and_cut_paths() {
    assert_eq!(panes::clock(42), "42s");
    assert_eq!(panes::clock(184), "3m04s");
    assert_eq!(panes::clock(3720), "1h02m");
    assert_eq!(panes::clock(93_784), "1d02h");
    assert_eq!(cut_left("/var/lib/cronq/cronq.db", 12), "…nq/cronq.db");
    assert_eq!(cut_left("cronq.db", 12), "cronq.db");
}
