//! The screen, drawn from the state, the UI and the clock: a pure function
//! (ratatui's immediate mode), so every pane is tested by rendering a fixed
//! state at a fixed time into a `TestBackend`.
//!
//! Layout: a header line, the throughput sparklines, the four panes, and a
//! status line. Up to 199 columns the panes stack; from 200 columns they
//! sit in two columns, and from 40 rows the sparklines double in height.
//! Each pane is a titled rule over a table, so 80x24 keeps room for rows.
//! Nothing depends on colour: the focused pane's title and the selected row
//! carry a `▶` marker, states are words, and with `NO_COLOR` set no colour
//! is drawn at all.

mod overlay;
mod panes;

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::input::{Mode, Ui};
use super::rows::{self, Pane};
use super::state::{Link, State, Watch};

/// Smallest screen drawn; below it a one-line notice.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;
/// From this width the panes sit in two columns (below it, a stacked pane
/// gets the whole width and shows its extra columns).
const WIDE: u16 = 200;
/// From this height the sparklines are two rows each.
const TALL: u16 = 40;

/// Colour or none (`NO_COLOR`); every other cue is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub colour: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value (no-color.org).
    pub fn from_env() -> Theme {
        Theme {
            colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, colour: Color) -> Style {
        if self.colour {
            Style::new().fg(colour)
        } else {
            Style::new()
        }
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }

    pub fn bad(self) -> Style {
        self.fg(Color::Red)
    }

    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
}

/// Everything a frame depends on besides the state.
#[derive(Debug, Clone, Copy)]
pub struct Scene<'a> {
    pub state: &'a State,
    pub ui: &'a Ui,
    pub now: Timestamp,
    pub theme: Theme,
}

impl Scene<'_> {
    fn focused(&self, pane: Pane) -> bool {
        self.ui.focus == pane && matches!(self.ui.mode, Mode::Normal | Mode::Filter { .. })
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, scene: &Scene) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "cronq top needs {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {}x{}",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let spark_rows = if area.height >= TALL { 2 } else { 1 };
    let [header, throughput, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1 + 3 * spark_rows),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, scene);
    panes::throughput(frame, throughput, scene);
    draw_panes(frame, body, scene);
    draw_status(frame, status, scene);
    overlay::draw(frame, area, scene);
}

/// The four panes, stacked or in two columns.
fn draw_panes(frame: &mut Frame, body: Rect, scene: &Scene) {
    if body.width >= WIDE {
        let [left, right] =
            Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(body);
        stack(frame, left, scene, &[Pane::Queue, Pane::Running]);
        stack(frame, right, scene, &[Pane::Crons, Pane::Failures]);
    } else {
        stack(frame, body, scene, &Pane::ALL);
    }
}

fn stack(frame: &mut Frame, area: Rect, scene: &Scene, panes: &[Pane]) {
    let wants: Vec<u16> = panes.iter().map(|p| wanted_rows(*p, scene)).collect();
    let focus = panes.iter().position(|p| *p == scene.ui.focus);
    let heights = share(area.height, &wants, focus);
    let areas = Layout::vertical(heights.iter().map(|h| Constraint::Length(*h))).split(area);
    for (pane, area) in panes.iter().zip(areas.iter()) {
        draw_pane(frame, *area, scene, *pane);
    }
}

/// Draws one pane into `area`.
pub fn draw_pane(frame: &mut Frame, area: Rect, scene: &Scene, pane: Pane) {
    match pane {
        Pane::Queue => panes::queue(frame, area, scene),
        Pane::Running => panes::running(frame, area, scene),
        Pane::Crons => panes::crons(frame, area, scene),
        Pane::Failures => panes::failures(frame, area, scene),
    }
}

/// Rows a pane would use to show all it has: its title rule, the table's
/// header, its rows (at least one, for "none"), and the queue's total.
fn wanted_rows(pane: Pane, scene: &Scene) -> u16 {
    let filter = scene.ui.filter();
    let n = match pane {
        Pane::Queue => rows::queue(scene.state, filter).len() + usize::from(filter.is_none()),
        Pane::Running => rows::running(scene.state, filter).len(),
        Pane::Crons => rows::crons(scene.state, filter).len(),
        Pane::Failures => rows::failures(scene.state, filter).len(),
    };
    2 + n.clamp(1, 1000) as u16
}

/// Shares `total` rows among panes wanting `wants`: each gets three (a
/// title, a header, a row) if it can, then one more at a time, the focused
/// pane first, until each has what it wants; the rest goes to the last.
fn share(total: u16, wants: &[u16], focus: Option<usize>) -> Vec<u16> {
    let n = wants.len() as u16;
    let floor = 3.min(total / n.max(1));
    let mut heights = vec![floor; wants.len()];
    let mut left = total - floor * n;
    let mut order: Vec<usize> = (0..wants.len()).collect();
    if let Some(f) = focus {
        order.retain(|i| *i != f);
        order.insert(0, f);
    }
    while left > 0 {
        let mut gave = false;
        for &i in &order {
            if left > 0 && heights[i] < wants[i] {
                heights[i] += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    if let Some(last) = heights.last_mut() {
        *last += left;
    }
    heights
}

fn draw_header(frame: &mut Frame, area: Rect, scene: &Scene) {
    let t = scene.theme;
    let sep = || Span::styled(" · ", t.dim());
    let mut spans = vec![Span::styled("cronq top", t.bold())];
    let Some(s) = &scene.state.status else {
        spans.push(sep());
        spans.push(Span::raw(format!(
            "waiting for the daemon at {}",
            scene.state.socket
        )));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    };
    spans.push(Span::raw(format!(" {}", s.version)));
    let backend = s.backend.clone().unwrap_or_else(|| "sqlite".to_string());
    let uptime = s.uptime_s + since(scene.state.status_at, scene.now);
    let paused = match s.paused.as_slice() {
        [] => "none".to_string(),
        p if p.iter().any(|t| t == "*") => "all".to_string(),
        p => p.join(","),
    };
    let mut tail = vec![
        sep(),
        Span::raw(format!("up {}", panes::clock(uptime))),
        sep(),
        Span::raw(format!("workers {}/{}", s.workers.busy, s.workers.max)),
        sep(),
        Span::raw("paused: "),
        Span::styled(
            paused.clone(),
            if paused == "none" { t.dim() } else { t.warn() },
        ),
    ];
    if s.automatic == Some(false) {
        tail.push(sep());
        tail.push(Span::styled("automatic processing off", t.warn()));
    }
    let mut db_part = backend;
    if let Some(n) = s.instances {
        db_part.push_str(&format!(" ({n} instances)"));
    }
    let used: usize = spans
        .iter()
        .chain(tail.iter())
        .map(|s| s.content.chars().count())
        .sum::<usize>()
        + db_part.chars().count()
        + 4;
    if let Some(db) = &s.db {
        let room = (area.width as usize).saturating_sub(used);
        if room >= 8 {
            db_part.push(' ');
            db_part.push_str(&cut_left(db, room));
        }
    }
    spans.push(sep());
    spans.push(Span::styled(db_part, t.accent()));
    spans.extend(tail);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Whole seconds from `from` to `now`, zero if unknown or in the future.
fn since(from: Option<Timestamp>, now: Timestamp) -> u64 {
    from.map_or(0, |f| (now.as_second() - f.as_second()).max(0) as u64)
}

/// `text`'s last `room` characters, with "…" when cut: a path's file name
/// is the part worth keeping.
fn cut_left(text: &str, room: usize) -> String {
    let n = text.chars().count();
    if n <= room {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n - room + 1).collect();
    format!("…{keep}")
}

fn draw_status(frame: &mut Frame, area: Rect, scene: &Scene) {
    let t = scene.theme;
    let state = scene.state;
    if let Mode::Filter { input } = &scene.ui.mode {
        let line = Line::from(vec![
            Span::styled("/ filter by type or name: ", t.bold()),
            Span::raw(format!("{input}▏")),
            Span::styled("  Enter apply · Esc clear", t.dim()),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let mut spans = match &state.link {
        Link::Connecting => vec![Span::styled("connecting…", t.warn())],
        Link::Down { retry_at, .. } => vec![Span::styled(
            format!(
                "✗ daemon unreachable, retrying in {}s",
                (retry_at.as_second() - scene.now.as_second()).max(0)
            ),
            t.bad(),
        )],
        Link::Up => match &state.watch {
            Watch::Live => vec![Span::styled("● live", t.good())],
            Watch::Unsupported => vec![Span::styled(
                "polling 1s · live events unavailable",
                t.warn(),
            )],
            Watch::Connecting | Watch::Down(_) => vec![Span::styled(
                "polling 1s · live events reconnecting",
                t.warn(),
            )],
        },
    };
    let sep = || Span::styled(" │ ", t.dim());
    if state.lagged > 0 {
        spans.push(sep());
        spans.push(Span::styled(
            format!("{} events missed", state.lagged),
            t.warn(),
        ));
    }
    if let Some(f) = scene.ui.filter() {
        spans.push(sep());
        spans.push(Span::styled(format!("filter \"{f}\""), t.accent()));
    }
    if let Some(e) = state.poll_errors.first() {
        spans.push(sep());
        spans.push(Span::styled(e.clone(), t.bad()));
    }
    spans.push(sep());
    match &state.message {
        Some(m) => spans.push(Span::styled(
            m.text.clone(),
            if m.error { t.bad() } else { Style::new() },
        )),
        None => spans.push(Span::styled(
            "Tab pane · ↑↓ select · Enter details · ? help · q quit",
            t.dim(),
        )),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests;
