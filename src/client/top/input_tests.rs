//! Keys to actions: each action is the CLI's protocol command for the row
//! the operator sees selected.

use ratatui::crossterm::event::{KeyEvent, KeyModifiers};
use serde_json::json;

use super::*;
use crate::client::request::Request;
use crate::client::top::state::{Poll, Watch};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

/// A state with two running jobs, a dead one, two crons and two types.
fn state() -> State {
    let mut s = State::new("s".into());
    s.watch = Watch::Unsupported;
    s.apply_poll(
        Poll {
            status: Some(json!({"version": "0.1.0", "paused": ["email"]})),
            stats: Some(json!({"types": {"email": {"pending": 1}, "noop": {}}})),
            crons: Some(json!({"crons": [{"id": "nightly", "enabled": true}, {"id": "system_queue", "enabled": true}]})),
            running: Some(json!({"jobs": [
                {"id": "run1", "name": "export", "type": "data_processing", "attempts": 1, "reserved_at": "2026-01-01T00:00:00.000Z"},
                {"id": "run2", "name": "mail", "type": "email", "attempts": 1, "reserved_at": "2026-01-01T00:00:05.000Z"}]})),
            dead: Some(json!({"jobs": [{"id": "dead1", "name": "bounce", "type": "email", "attempts": 4, "last_error": "550"}]})),
            scheduled: Some(json!({"jobs": []})),
            ..Poll::default()
        },
        "2026-01-01T00:00:10Z".parse().unwrap(),
    );
    s
}

/// The request line an action would send.
fn sent(action: Action) -> serde_json::Value {
    match action {
        Action::Send(out) => serde_json::to_value(Request::new(1, out.cmd)).unwrap(),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn said(action: Action) -> String {
    match action {
        Action::Say(text) => text,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn tab_moves_between_panes_and_j_k_between_rows() {
    let s = state();
    let mut ui = Ui::default();
    assert_eq!(ui.focus, Pane::Running);
    assert_eq!(
        ui.selected_key(&s).as_deref(),
        Some("run1"),
        "longest running first"
    );
    on_key(&mut ui, &s, ch('j'));
    assert_eq!(ui.selected_key(&s).as_deref(), Some("run2"));
    on_key(&mut ui, &s, key(KeyCode::Down));
    assert_eq!(
        ui.selected_key(&s).as_deref(),
        Some("run2"),
        "stops at the end"
    );
    on_key(&mut ui, &s, ch('k'));
    assert_eq!(ui.selected_key(&s).as_deref(), Some("run1"));
    on_key(&mut ui, &s, key(KeyCode::Tab));
    assert_eq!(ui.focus, Pane::Crons);
    on_key(&mut ui, &s, key(KeyCode::Tab));
    on_key(&mut ui, &s, key(KeyCode::Tab));
    assert_eq!(ui.focus, Pane::Queue, "Tab wraps round");
    on_key(&mut ui, &s, key(KeyCode::BackTab));
    assert_eq!(ui.focus, Pane::Failures);
}

#[test]
fn the_selection_follows_its_row_and_falls_back_to_a_neighbour() {
    let mut s = state();
    let mut ui = Ui::default();
    on_key(&mut ui, &s, ch('j'));
    assert_eq!(ui.selected_key(&s).as_deref(), Some("run2"));
    s.running.remove("run2");
    assert_eq!(ui.selected_key(&s).as_deref(), Some("run1"));
}

#[test]
fn r_and_c_send_retry_and_cancel_for_the_selected_job() {
    let s = state();
    let mut ui = Ui {
        focus: Pane::Failures,
        ..Ui::default()
    };
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('r'))),
        json!({"cmd": "retry", "id": "dead1"})
    );
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('c'))),
        json!({"cmd": "cancel", "id": "dead1"})
    );
    ui.focus = Pane::Crons;
    assert!(said(on_key(&mut ui, &s, ch('r'))).contains("acts on a job"));
}

#[test]
fn force_cancel_asks_first() {
    let s = state();
    let mut ui = Ui::default();
    assert!(matches!(on_key(&mut ui, &s, ch('C')), Action::None));
    assert!(matches!(&ui.mode, Mode::Confirm { id, name } if id == "run1" && name == "export"));
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('y'))),
        json!({"cmd": "cancel", "id": "run1", "force": true})
    );
    assert!(matches!(ui.mode, Mode::Normal));
    on_key(&mut ui, &s, ch('C'));
    assert!(said(on_key(&mut ui, &s, ch('n'))).contains("left running"));
    ui.focus = Pane::Failures;
    assert!(said(on_key(&mut ui, &s, ch('C'))).contains("running pane"));
}

#[test]
fn cron_keys_trigger_enable_and_disable_the_selected_cron() {
    let s = state();
    let mut ui = Ui {
        focus: Pane::Crons,
        ..Ui::default()
    };
    on_key(&mut ui, &s, ch('j'));
    for (c, cmd) in [('t', "trigger"), ('e', "enable"), ('d', "disable")] {
        assert_eq!(
            sent(on_key(&mut ui, &s, ch(c))),
            json!({"cmd": cmd, "id": "system_queue"})
        );
    }
    assert_eq!(
        sent(on_key(&mut ui, &s, key(KeyCode::Enter))),
        json!({"cmd": "cron", "id": "system_queue", "limit": 20})
    );
}

#[test]
fn p_pauses_a_running_type_and_resumes_a_paused_one() {
    let s = state();
    let mut ui = Ui {
        focus: Pane::Queue,
        ..Ui::default()
    };
    // Types come in the daemon's order: email, then noop.
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('p'))),
        json!({"cmd": "resume", "id": 1, "type": "email"})
    );
    on_key(&mut ui, &s, ch('j'));
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('p'))),
        json!({"cmd": "pause", "id": 1, "type": "noop"})
    );
    ui.focus = Pane::Running;
    assert_eq!(
        sent(on_key(&mut ui, &s, ch('p'))),
        json!({"cmd": "pause", "id": 1, "type": "data_processing"}),
        "the selected job's type"
    );
}

#[test]
fn enter_opens_the_selected_job() {
    let s = state();
    let mut ui = Ui::default();
    let action = on_key(&mut ui, &s, key(KeyCode::Enter));
    assert!(
        matches!(&action, Action::Send(out) if matches!(&out.purpose, Purpose::Detail { title, .. } if title == "job run1"))
    );
    assert_eq!(sent(action), json!({"cmd": "job", "id": "run1"}));
}

#[test]
fn slash_filters_and_esc_clears_before_it_quits() {
    let s = state();
    let mut ui = Ui::default();
    on_key(&mut ui, &s, ch('/'));
    for c in "MAIL".chars() {
        on_key(&mut ui, &s, ch(c));
    }
    on_key(&mut ui, &s, key(KeyCode::Enter));
    assert_eq!(ui.filter(), Some("MAIL"));
    assert_eq!(
        rows::keys(Pane::Running, &s, ui.filter()),
        ["run2"],
        "by name or type, any case"
    );
    assert_eq!(ui.selected_key(&s).as_deref(), Some("run2"));
    assert!(matches!(
        on_key(&mut ui, &s, key(KeyCode::Esc)),
        Action::None
    ));
    assert_eq!(ui.filter(), None);
    assert!(matches!(
        on_key(&mut ui, &s, key(KeyCode::Esc)),
        Action::Quit
    ));
}

#[test]
fn q_and_ctrl_c_quit_help_closes_on_any_key() {
    let s = state();
    let mut ui = Ui::default();
    assert!(matches!(on_key(&mut ui, &s, ch('q')), Action::Quit));
    on_key(&mut ui, &s, ch('?'));
    assert!(matches!(ui.mode, Mode::Help));
    assert!(matches!(on_key(&mut ui, &s, ch('q')), Action::None));
    assert!(matches!(ui.mode, Mode::Normal));
    on_key(&mut ui, &s, ch('/'));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(
        matches!(on_key(&mut ui, &s, ctrl_c), Action::Quit),
        "even while typing"
    );
}

#[test]
fn pause_answers_read_as_the_types_in_force() {
    let now = jiff::Timestamp::UNIX_EPOCH;
    assert_eq!(
        render_paused(&json!({"paused": []}), now),
        "no type is paused"
    );
    assert_eq!(
        render_paused(&json!({"paused": ["*"]}), now),
        "every type is paused"
    );
    assert_eq!(
        render_paused(&json!({"paused": ["email", "noop"]}), now),
        "paused: email, noop"
    );
}
