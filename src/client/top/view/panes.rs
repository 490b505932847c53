//! The throughput sparklines and the four panes' tables.

use jiff::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState};

use super::Scene;
use crate::client::top::rows::{self, Pane};
use crate::client::top::throughput::Bucket;
use crate::client::top::wire::Progress;

/// From this pane width tables show their extra columns.
const ROOMY: u16 = 110;

/// Seconds as a clock reads them: 42s, 3m04s, 1h02m, 2d03h.
pub fn clock(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `at` seen from `now`: "in 42s", "3m04s ago", "now".
fn relative(at: Timestamp, now: Timestamp) -> String {
    let d = at.as_second() - now.as_second();
    match d {
        0 => "now".to_string(),
        d if d > 0 => format!("in {}", clock(d as u64)),
        d => format!("{} ago", clock(d.unsigned_abs())),
    }
}

/// `HH:MM:SS` in UTC, as the CLI shows times.
fn hms(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".into(), |t| t.strftime("%H:%M:%S").to_string())
}

/// A titled rule: the pane's name, its count, and `▶` when focused.
fn titled(scene: &Scene, pane: Pane, count: String) -> Block<'static> {
    let t = scene.theme;
    let (mark, style) = if scene.focused(pane) {
        ("▶ ", t.bold().patch(t.accent()))
    } else {
        ("", t.bold())
    };
    Block::new().borders(Borders::TOP).title(Line::from(vec![
        Span::styled(format!("{mark}{} ", pane.title()), style),
        Span::styled(format!("{count} "), t.dim()),
    ]))
}

/// "3" or "2 of 3" under a filter.
fn count(shown: usize, all: usize) -> String {
    if shown == all {
        format!("({all})")
    } else {
        format!("({shown} of {all})")
    }
}

/// A pane's table before it is drawn.
struct Grid {
    header: Row<'static>,
    rows: Vec<Row<'static>>,
    widths: Vec<Constraint>,
    /// What an empty pane says.
    empty: &'static str,
}

/// A table with the pane's selection, or one "none" line when empty.
fn table(
    frame: &mut Frame,
    area: Rect,
    scene: &Scene,
    pane: Pane,
    block: Block<'static>,
    grid: Grid,
) {
    let Grid {
        header,
        rows,
        widths,
        empty,
    } = grid;
    if rows.is_empty() {
        let empty = if scene.ui.filter().is_some() {
            "none match the filter"
        } else {
            empty
        };
        let text = Paragraph::new(Span::styled(empty, scene.theme.dim())).block(block);
        frame.render_widget(text, area);
        return;
    }
    let keys = rows::keys(pane, scene.state, scene.ui.filter());
    let selected = scene.ui.selection[pane.index()].resolve(&keys);
    let focused = scene.focused(pane);
    let table = Table::new(rows, widths)
        .header(header.style(scene.theme.bold()))
        .block(block)
        .column_spacing(1)
        .highlight_symbol(if focused { "▶ " } else { "  " })
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .row_highlight_style(if focused {
            Style::new().add_modifier(ratatui::style::Modifier::REVERSED)
        } else {
            Style::new()
        });
    let mut state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn right(text: impl Into<String>) -> Cell<'static> {
    Cell::from(Line::from(text.into()).right_aligned())
}

/// Which count of a second a sparkline draws.
type Pick = fn(&Bucket) -> u64;

pub fn throughput(frame: &mut Frame, area: Rect, scene: &Scene) {
    let t = scene.theme;
    let oldest = match scene.state.stats.oldest_pending_age_s {
        Some(s) => clock(s as u64),
        None => "none pending".to_string(),
    };
    let block = Block::new().borders(Borders::TOP).title(Line::from(vec![
        Span::styled("Throughput ", t.bold()),
        Span::styled("jobs/s, last 60 s ", t.dim()),
        Span::raw(format!("· oldest pending: {oldest} ")),
    ]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let series = scene.state.throughput.series(scene.now.as_second());
    let lines: [(&str, Pick, Style); 3] = [
        ("started", |b| b.started, t.accent()),
        ("succeeded", |b| b.succeeded, t.good()),
        ("failed", |b| b.failed, t.bad()),
    ];
    let areas = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(inner);
    for ((label, pick, style), row) in lines.iter().zip(areas.iter()) {
        let values: Vec<u64> = series.iter().map(pick).collect();
        let last = values.last().copied().unwrap_or(0);
        let peak = values.iter().copied().max().unwrap_or(0);
        let [name, spark, figures] = Layout::horizontal([
            Constraint::Length(10),
            Constraint::Fill(1),
            Constraint::Length(20),
        ])
        .areas(*row);
        frame.render_widget(Paragraph::new(*label), name);
        // A wide screen draws each second as several columns, so the
        // minute fills the width instead of a corner of it.
        let per_second = (spark.width as usize / values.len().max(1)).max(1);
        let stretched: Vec<u64> = values
            .iter()
            .flat_map(|v| std::iter::repeat_n(*v, per_second))
            .collect();
        let shown = &stretched[stretched.len().saturating_sub(spark.width as usize)..];
        frame.render_widget(
            Sparkline::default()
                .data(shown)
                .max(peak.max(1))
                .style(*style),
            spark,
        );
        frame.render_widget(Paragraph::new(format!(" {last:>6}/s  max {peak}")), figures);
    }
}

pub fn queue(frame: &mut Frame, area: Rect, scene: &Scene) {
    let state = scene.state;
    let list = rows::queue(state, scene.ui.filter());
    let roomy = area.width >= ROOMY;
    let mut header = vec!["TYPE", "PENDING", "SCHED", "RUNNING", "DEAD", "PAUSED"];
    let mut widths = vec![
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
    ];
    if roomy {
        header.extend(["OK", "FAILED", "P50", "P95"]);
        widths.extend([Constraint::Length(9), Constraint::Length(9)]);
        widths.extend([Constraint::Length(8), Constraint::Length(8)]);
    }
    let ms = |v: Option<f64>| match v {
        None => "-".to_string(),
        Some(m) if m < 1.0 => "<1ms".to_string(),
        Some(m) => crate::client::timefmt::millis(m as u64),
    };
    let mut table_rows: Vec<Row> = list
        .iter()
        .map(|ty| {
            let c = ty.counts;
            let paused = if state.is_paused(&ty.job_type) {
                "yes"
            } else {
                ""
            };
            let mut cells = vec![
                Cell::from(ty.job_type.clone()),
                right(c.pending.to_string()),
                right(c.scheduled.to_string()),
                right(c.running.to_string()),
                Cell::from(Line::from(c.dead.to_string()).right_aligned()).style(if c.dead > 0 {
                    scene.theme.bad()
                } else {
                    Style::new()
                }),
                Cell::from(paused).style(scene.theme.warn()),
            ];
            if roomy {
                cells.extend([
                    right(ty.succeeded.to_string()),
                    right(ty.failed.to_string()),
                    right(ms(ty.p50_ms)),
                    right(ms(ty.p95_ms)),
                ]);
            }
            Row::new(cells)
        })
        .collect();
    // The totals are of every type: under a filter they would mislead.
    if let (Some(s), false, None) = (&state.status, table_rows.is_empty(), scene.ui.filter()) {
        let q = s.queue;
        table_rows.push(
            Row::new(vec![
                Cell::from("all"),
                right(q.pending.to_string()),
                right(q.scheduled.to_string()),
                right(q.running.to_string()),
                right(q.dead.to_string()),
            ])
            .style(scene.theme.dim()),
        );
    }
    let block = titled(
        scene,
        Pane::Queue,
        count(list.len(), state.stats.types.len()),
    );
    let header = Row::new(header.into_iter().map(|h| right_unless_first(h, "TYPE")));
    let empty = "no job types yet";
    let grid = Grid {
        header,
        rows: table_rows,
        widths,
        empty,
    };
    table(frame, area, scene, Pane::Queue, block, grid);
}

fn right_unless_first(h: &'static str, first: &str) -> Cell<'static> {
    if h == first || h == "PAUSED" {
        Cell::from(h)
    } else {
        right(h)
    }
}

/// `████░░░░  50%`, roomy `██████████░░░░░░░░░░  50% 5/10 message`, or
/// `5 done` when the total is unknown.
fn progress(p: Option<&Progress>, bar: usize, roomy: bool) -> String {
    let Some(p) = p else {
        return "-".to_string();
    };
    let mut out = match p.total.filter(|t| *t > 0) {
        Some(total) => {
            let ratio = (p.done as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (ratio * bar as f64).round() as usize;
            let mut text = format!(
                "{}{} {:>3.0}%",
                "█".repeat(filled),
                "░".repeat(bar - filled),
                ratio * 100.0
            );
            if roomy {
                text.push_str(&format!(" {}/{total}", p.done));
            }
            text
        }
        None => format!("{} done", p.done),
    };
    if let (true, Some(m)) = (roomy, &p.message) {
        out.push(' ');
        out.push_str(m);
    }
    out
}

pub fn running(frame: &mut Frame, area: Rect, scene: &Scene) {
    let state = scene.state;
    let list = rows::running(state, scene.ui.filter());
    let roomy = area.width >= ROOMY;
    let (bar, name_w, type_w) = if roomy { (20, 24, 16) } else { (8, 16, 14) };
    let table_rows = list
        .iter()
        .map(|r| {
            let elapsed = r
                .started
                .map_or_else(|| "-".into(), |s| clock(since(s, scene.now)));
            Row::new(vec![
                Cell::from(r.id.clone()),
                Cell::from(r.name.clone()),
                Cell::from(r.job_type.clone()),
                right(r.attempt.to_string()),
                right(elapsed),
                Cell::from(progress(r.progress.as_ref(), bar, roomy)),
            ])
        })
        .collect();
    let widths = vec![
        Constraint::Length(15),
        Constraint::Length(name_w),
        Constraint::Length(type_w),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let header = Row::new(vec![
        Cell::from("ID"),
        Cell::from("NAME"),
        Cell::from("TYPE"),
        right("TRY"),
        right("ELAPSED"),
        Cell::from("PROGRESS"),
    ]);
    let block = titled(scene, Pane::Running, count(list.len(), state.running.len()));
    let empty = "no job is running";
    let grid = Grid {
        header,
        rows: table_rows,
        widths,
        empty,
    };
    table(frame, area, scene, Pane::Running, block, grid);
}

fn since(from: Timestamp, now: Timestamp) -> u64 {
    (now.as_second() - from.as_second()).max(0) as u64
}

pub fn crons(frame: &mut Frame, area: Rect, scene: &Scene) {
    let state = scene.state;
    let t = scene.theme;
    let list = rows::crons(state, scene.ui.filter());
    let roomy = area.width >= ROOMY;
    let table_rows = list
        .iter()
        .map(|c| {
            let next = match (c.enabled, c.next_run) {
                (false, _) => "disabled".to_string(),
                (true, Some(at)) => relative(at, scene.now),
                (true, None) => "-".to_string(),
            };
            let last = c.last_run.as_ref();
            let last_at = last.and_then(|r| r.started.or(r.scheduled_for));
            let status = last.map_or("-", |r| r.status.as_str()).to_string();
            let style = match status.as_str() {
                "failed" => t.bad(),
                "skipped" => t.warn(),
                _ => Style::new(),
            };
            let mut cells = vec![
                Cell::from(c.id.clone()),
                Cell::from(c.schedule.clone()),
                Cell::from(next),
                Cell::from(last_at.map_or_else(|| "never".into(), |at| relative(at, scene.now))),
                Cell::from(status).style(style),
            ];
            if roomy {
                cells.push(Cell::from(c.timezone.clone()));
                let took = last.and_then(|r| r.duration_ms);
                cells.push(right(
                    took.map_or_else(|| "-".into(), |ms| format!("{ms}ms")),
                ));
                let note = last
                    .and_then(|r| r.error.clone())
                    .unwrap_or(c.description.clone());
                cells.push(Cell::from(note));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(18),
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
    ];
    let mut header = vec!["ID", "SCHEDULE", "NEXT", "LAST", "STATUS"];
    if roomy {
        widths.extend([
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Fill(1),
        ]);
        header.extend(["ZONE", "TOOK", "NOTE"]);
    } else {
        widths.push(Constraint::Fill(1));
    }
    let header = Row::new(
        header
            .into_iter()
            .map(|h| if h == "TOOK" { right(h) } else { Cell::from(h) }),
    );
    let block = titled(scene, Pane::Crons, count(list.len(), state.crons.len()));
    let empty = "no crons";
    let grid = Grid {
        header,
        rows: table_rows,
        widths,
        empty,
    };
    table(frame, area, scene, Pane::Crons, block, grid);
}

pub fn failures(frame: &mut Frame, area: Rect, scene: &Scene) {
    let state = scene.state;
    let t = scene.theme;
    let list = rows::failures(state, scene.ui.filter());
    let roomy = area.width >= ROOMY;
    let table_rows = list
        .iter()
        .map(|f| {
            let (word, style) = if f.dead {
                ("dead", t.bad())
            } else {
                ("retry", t.warn())
            };
            let mut cells = vec![
                Cell::from(hms(f.at)),
                Cell::from(f.name.clone()),
                Cell::from(f.job_type.clone()),
                Cell::from(word).style(style),
            ];
            if roomy {
                cells.push(Cell::from(f.id.clone()));
                cells.push(right(f.attempt.to_string()));
            }
            cells.push(Cell::from(f.error.clone().unwrap_or_else(|| "-".into())));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(8),
        Constraint::Length(if roomy { 24 } else { 16 }),
        Constraint::Length(if roomy { 16 } else { 12 }),
        Constraint::Length(5),
    ];
    let mut header = vec![
        Cell::from("TIME"),
        Cell::from("JOB"),
        Cell::from("TYPE"),
        Cell::from("STATE"),
    ];
    if roomy {
        widths.extend([Constraint::Length(15), Constraint::Length(3)]);
        header.extend([Cell::from("ID"), right("TRY")]);
    }
    widths.push(Constraint::Fill(1));
    header.push(Cell::from("ERROR"));
    let block = titled(
        scene,
        Pane::Failures,
        count(list.len(), state.failures.len()),
    );
    let empty = "no failures";
    let header = Row::new(header);
    let grid = Grid {
        header,
        rows: table_rows,
        widths,
        empty,
    };
    table(frame, area, scene, Pane::Failures, block, grid);
}
