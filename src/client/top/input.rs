//! Keys: what the operator is looking at (`Ui`: the focused pane, the
//! selection, the filter, an open overlay) and what a key press does.
//!
//! `on_key` is a function of the key, the UI and the state, and returns
//! what the loop must do; it never talks to the daemon itself. An action
//! is one of the CLI's protocol commands (`Cmd`, built from the shared
//! request types) together with the CLI's own renderer of its answer, so
//! `r` in `top` and `cronq retry` send the same line and read the same
//! answer the same way.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde_json::Value;

use super::rows::{self, Pane, Selection};
use super::state::State;
use crate::client::Render;
use crate::client::commands::{crons as cron_cmds, jobs as job_cmds};
use crate::client::request::{CancelArgs, Cmd, CronQuery, PauseArgs};

/// Runs shown in a cron's details.
const DETAIL_RUNS: usize = 20;
/// Rows PageUp / PageDown move.
const PAGE: isize = 10;

/// An overlay or input mode on top of the panes.
#[derive(Debug, Clone)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a filter; `input` is the text so far.
    Filter {
        input: String,
    },
    /// Waiting for y/n before force-cancelling a running job.
    Confirm {
        id: String,
        name: String,
    },
    /// A job's or cron's record, as the daemon answered `job` / `cron`.
    Detail {
        title: String,
        answer: Value,
        render: Render,
        scroll: u16,
    },
}

#[derive(Debug, Clone)]
pub struct Ui {
    pub focus: Pane,
    pub selection: [Selection; 4],
    pub filter: Option<String>,
    pub mode: Mode,
}

impl Default for Ui {
    fn default() -> Ui {
        Ui {
            focus: Pane::Running,
            selection: Default::default(),
            filter: None,
            mode: Mode::Normal,
        }
    }
}

/// What an answer is for once it comes back.
#[derive(Debug, Clone)]
pub enum Purpose {
    /// An action: its answer goes to the status line, read with `render`.
    Act { label: String, render: Render },
    /// Details to open in an overlay.
    Detail { title: String, render: Render },
}

/// A request for the request connection and what its answer is for.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub cmd: Cmd,
    pub purpose: Purpose,
}

/// What the loop must do after a key.
#[derive(Debug, Clone)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    Quit,
    /// Send this on the request connection.
    Send(Box<Outgoing>),
    /// Tell the operator something without asking the daemon.
    Say(String),
}

impl Ui {
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// The focused pane's selected row key.
    pub fn selected_key(&self, state: &State) -> Option<String> {
        self.selected_in(self.focus, state)
    }

    pub fn selected_in(&self, pane: Pane, state: &State) -> Option<String> {
        let keys = rows::keys(pane, state, self.filter());
        let at = self.selection[pane.index()].resolve(&keys)?;
        keys.into_iter().nth(at)
    }

    fn shift(&mut self, state: &State, delta: isize) {
        let keys = rows::keys(self.focus, state, self.filter());
        self.selection[self.focus.index()].shift(&keys, delta);
    }
}

pub fn on_key(ui: &mut Ui, state: &State, key: KeyEvent) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    match &mut ui.mode {
        Mode::Normal => normal(ui, state, key),
        Mode::Help => {
            ui.mode = Mode::Normal;
            Action::None
        }
        Mode::Filter { input } => {
            match key.code {
                KeyCode::Char(c) if input.chars().count() < 64 => input.push(c),
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Enter => {
                    let text = input.trim().to_string();
                    ui.filter = (!text.is_empty()).then_some(text);
                    ui.mode = Mode::Normal;
                }
                KeyCode::Esc => {
                    ui.filter = None;
                    ui.mode = Mode::Normal;
                }
                _ => {}
            }
            Action::None
        }
        Mode::Confirm { id, name } => {
            let (id, name) = (id.clone(), name.clone());
            ui.mode = Mode::Normal;
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Action::Send(Box::new(Outgoing {
                    cmd: Cmd::CancelForce(CancelArgs {
                        id: id.clone(),
                        force: Some(true),
                    }),
                    purpose: Purpose::Act {
                        label: format!("force-cancel {name} ({id})"),
                        render: job_cmds::render_cancel,
                    },
                })),
                _ => Action::Say(format!("job {id} left running")),
            }
        }
        Mode::Detail { scroll, .. } => {
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::PageDown | KeyCode::Char(' ') => *scroll = scroll.saturating_add(10),
                KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
                KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => ui.mode = Mode::Normal,
                _ => {}
            }
            Action::None
        }
    }
}

fn normal(ui: &mut Ui, state: &State, key: KeyEvent) -> Action {
    match key.code {
        KeyCode::Char('q') => Action::Quit,
        // Esc first drops a filter, so leaving a filtered view is not
        // leaving the program.
        KeyCode::Esc if ui.filter.is_some() => {
            ui.filter = None;
            Action::None
        }
        KeyCode::Esc => Action::Quit,
        KeyCode::Tab | KeyCode::Right => {
            ui.focus = ui.focus.next();
            Action::None
        }
        KeyCode::BackTab | KeyCode::Left => {
            ui.focus = ui.focus.previous();
            Action::None
        }
        KeyCode::Down | KeyCode::Char('j') => shift(ui, state, 1),
        KeyCode::Up | KeyCode::Char('k') => shift(ui, state, -1),
        KeyCode::PageDown => shift(ui, state, PAGE),
        KeyCode::PageUp => shift(ui, state, -PAGE),
        KeyCode::Home | KeyCode::Char('g') => shift(ui, state, isize::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => shift(ui, state, isize::MAX / 2),
        KeyCode::Char('?') => {
            ui.mode = Mode::Help;
            Action::None
        }
        KeyCode::Char('/') => {
            ui.mode = Mode::Filter {
                input: ui.filter.clone().unwrap_or_default(),
            };
            Action::None
        }
        KeyCode::Enter => details(ui, state),
        KeyCode::Char('r') => on_job(ui, state, "retry", |id| Cmd::Retry { id }),
        KeyCode::Char('c') => on_job(ui, state, "cancel", |id| Cmd::Cancel { id }),
        KeyCode::Char('C') => force_cancel(ui, state),
        KeyCode::Char('t') => on_cron(ui, state, "trigger", cron_cmds::render_trigger, |id| {
            Cmd::Trigger { id }
        }),
        KeyCode::Char('e') => on_cron(ui, state, "enable", cron_cmds::render_switch, |id| {
            Cmd::Enable { id }
        }),
        KeyCode::Char('d') => on_cron(ui, state, "disable", cron_cmds::render_switch, |id| {
            Cmd::Disable { id }
        }),
        KeyCode::Char('p') => pause(ui, state),
        _ => Action::None,
    }
}

fn shift(ui: &mut Ui, state: &State, delta: isize) -> Action {
    ui.shift(state, delta);
    Action::None
}

fn details(ui: &Ui, state: &State) -> Action {
    let Some(id) = ui.selected_key(state) else {
        return Action::Say("nothing selected".into());
    };
    match ui.focus {
        Pane::Running | Pane::Failures => Action::Send(Box::new(Outgoing {
            cmd: Cmd::Job { id: id.clone() },
            purpose: Purpose::Detail {
                title: format!("job {id}"),
                render: super::detail::render,
            },
        })),
        Pane::Crons => Action::Send(Box::new(Outgoing {
            cmd: Cmd::Cron(CronQuery {
                id: id.clone(),
                limit: Some(DETAIL_RUNS),
            }),
            purpose: Purpose::Detail {
                title: format!("cron {id}"),
                render: cron_cmds::render_cron,
            },
        })),
        Pane::Queue => Action::Say(
            "Enter opens a job or a cron: Tab to the running, crons or failures pane".into(),
        ),
    }
}

/// `retry` and `cancel` act on the selected job of the running or the
/// failures pane; the daemon decides whether the job's state allows it.
fn on_job(ui: &Ui, state: &State, verb: &str, cmd: fn(String) -> Cmd) -> Action {
    if !matches!(ui.focus, Pane::Running | Pane::Failures) {
        return Action::Say(format!(
            "{verb} acts on a job: Tab to the running or failures pane"
        ));
    }
    let Some(id) = ui.selected_key(state) else {
        return Action::Say("no job selected".into());
    };
    let render: Render = if verb == "retry" {
        job_cmds::render_retry
    } else {
        job_cmds::render_cancel
    };
    Action::Send(Box::new(Outgoing {
        cmd: cmd(id.clone()),
        purpose: Purpose::Act {
            label: format!("{verb} {id}"),
            render,
        },
    }))
}

fn force_cancel(ui: &mut Ui, state: &State) -> Action {
    if ui.focus != Pane::Running {
        return Action::Say("C force-cancels a running job: Tab to the running pane".into());
    }
    let Some(id) = ui.selected_key(state) else {
        return Action::Say("no job selected".into());
    };
    let name = state
        .running
        .get(&id)
        .map_or_else(String::new, |r| r.name.clone());
    ui.mode = Mode::Confirm { id, name };
    Action::None
}

fn on_cron(ui: &Ui, state: &State, verb: &str, render: Render, cmd: fn(String) -> Cmd) -> Action {
    if ui.focus != Pane::Crons {
        return Action::Say(format!("{verb} acts on a cron: Tab to the crons pane"));
    }
    let Some(id) = ui.selected_key(state) else {
        return Action::Say("no cron selected".into());
    };
    Action::Send(Box::new(Outgoing {
        cmd: cmd(id.clone()),
        purpose: Purpose::Act {
            label: format!("{verb} {id}"),
            render,
        },
    }))
}

/// `p`: pauses the selected row's type, or resumes it if it is paused.
fn pause(ui: &Ui, state: &State) -> Action {
    let key = ui.selected_key(state);
    let job_type = match ui.focus {
        Pane::Queue => key,
        Pane::Running => key.and_then(|id| state.running.get(&id).map(|r| r.job_type.clone())),
        Pane::Failures => key.and_then(|id| {
            state
                .failures
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.job_type.clone())
        }),
        Pane::Crons => return Action::Say("p pauses a job type: Tab to the queue pane".into()),
    };
    let Some(job_type) = job_type else {
        return Action::Say("no job type selected".into());
    };
    let args = PauseArgs {
        job_type: Some(job_type.clone()),
    };
    let (verb, cmd) = if state.is_paused(&job_type) {
        ("resume", Cmd::Resume(args))
    } else {
        ("pause", Cmd::Pause(args))
    };
    Action::Send(Box::new(Outgoing {
        cmd,
        purpose: Purpose::Act {
            label: format!("{verb} type {job_type}"),
            render: render_paused,
        },
    }))
}

/// `pause` / `resume` answer with the paused types now in force.
pub fn render_paused(a: &Value, _now: jiff::Timestamp) -> String {
    let paused: Vec<&str> = a
        .get("paused")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match paused.as_slice() {
        [] => "no type is paused".to_string(),
        ["*"] => "every type is paused".to_string(),
        types => format!("paused: {}", types.join(", ")),
    }
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
