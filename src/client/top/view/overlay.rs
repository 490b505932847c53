//! Boxes drawn over the panes: help, a job's or cron's details, the
//! force-cancel question, and "the daemon is unreachable".

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Padding, Paragraph, Wrap};

use super::Scene;
use crate::client::top::input::Mode;
use crate::client::top::state::Link;

/// The keys, as `?` lists them; the man page lists the same.
pub const HELP: [(&str, &str); 17] = [
    ("Tab / Shift-Tab", "next / previous pane"),
    ("↑ ↓  j k", "select a row (PgUp PgDn, g G)"),
    ("Enter", "details of the job or cron"),
    ("r", "retry the job (dead or scheduled)"),
    ("c", "cancel the job (not running)"),
    ("C", "force-cancel the running job (asks first)"),
    ("t", "trigger the cron now"),
    ("e / d", "enable / disable the cron"),
    ("p", "pause / resume the selected type"),
    ("/", "filter by type or name (Enter, Esc)"),
    ("?", "this help"),
    ("q  Esc", "quit (Esc first clears a filter)"),
    ("Ctrl-C", "quit"),
    ("", ""),
    ("panes", "Queue · Running · Crons · Recent failures"),
    ("status line", "the daemon's answer to the last key"),
    ("", "any key closes this help"),
];

pub fn draw(frame: &mut Frame, area: Rect, scene: &Scene) {
    match &scene.ui.mode {
        Mode::Help => help(frame, area, scene),
        Mode::Confirm { id, name } => confirm(frame, area, scene, id, name),
        Mode::Detail {
            title,
            answer,
            render,
            scroll,
        } => {
            let text = render(answer, scene.now);
            detail(frame, area, scene, title, &text, *scroll);
        }
        Mode::Normal | Mode::Filter { .. } => {
            if let Link::Down { error, retry_at } = &scene.state.link {
                let secs = (retry_at.as_second() - scene.now.as_second()).max(0);
                unreachable(frame, area, scene, error, secs);
            }
        }
    }
}

/// A `width` x `height` box in the middle of `area`, cleared.
fn centred(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    frame.render_widget(Clear, cell);
    cell
}

fn boxed(title: &str, scene: &Scene) -> Block<'static> {
    Block::new()
        .borders(Borders::ALL)
        .padding(Padding::horizontal(1))
        .title(Span::styled(format!(" {title} "), scene.theme.bold()))
}

fn help(frame: &mut Frame, area: Rect, scene: &Scene) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>15}  "), scene.theme.bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    let cell = centred(frame, area, 66, HELP.len() as u16 + 2);
    frame.render_widget(
        Paragraph::new(lines).block(boxed("cronq top: keys", scene)),
        cell,
    );
}

fn confirm(frame: &mut Frame, area: Rect, scene: &Scene, id: &str, name: &str) {
    let text = Text::from(vec![
        Line::from(format!("Force-cancel the running job {name} ({id})?")),
        Line::from("Its handler is stopped and the job ends cancelled."),
        Line::from(""),
        Line::from(vec![
            Span::styled("y", scene.theme.bold()),
            Span::raw(" force-cancel   "),
            Span::styled("any other key", scene.theme.bold()),
            Span::raw(" keep it running"),
        ]),
    ]);
    let cell = centred(frame, area, 66, 6);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(boxed("force-cancel", scene)),
        cell,
    );
}

fn detail(frame: &mut Frame, area: Rect, scene: &Scene, title: &str, text: &str, scroll: u16) {
    let width = area.width.saturating_sub(4).max(20);
    let height = area.height.saturating_sub(2).max(5);
    let cell = centred(frame, area, width, height);
    let block = boxed(title, scene).title_bottom(Span::styled(
        " j k / PgUp PgDn scroll · Esc closes ",
        scene.theme.dim(),
    ));
    let lines: Vec<Line> = text.lines().map(|l| Line::from(l.to_string())).collect();
    let max_scroll = (lines.len() as u16).saturating_sub(height.saturating_sub(2));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((scroll.min(max_scroll), 0)),
        cell,
    );
}

fn unreachable(frame: &mut Frame, area: Rect, scene: &Scene, error: &str, secs: i64) {
    let text = Text::from(vec![
        Line::from(format!("Cannot reach the daemon at {}", scene.state.socket)),
        Line::from(Span::styled(error.to_string(), scene.theme.bad())),
        Line::from(if scene.state.status.is_some() {
            format!("Retrying in {secs}s. The figures behind are the last known.")
        } else {
            format!("Retrying in {secs}s. Nothing has been received yet.")
        }),
        Line::from(Span::styled("q quits", scene.theme.dim())),
    ]);
    let cell = centred(frame, area, 72.min(area.width), 6);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(boxed("daemon unreachable", scene)),
        cell,
    );
}
