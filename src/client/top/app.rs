//! The loop: waits on one channel for whatever comes first (a key, events,
//! a poll's answers, an action's answer, a signal, or the next deadline),
//! updates the state, and draws.
//!
//! Drawing is paced, not driven by events: at most every [`FRAME`] while
//! events arrive, at once after a key, and on each wall-clock second so
//! countdowns tick. An idle dashboard therefore wakes about twice a second
//! (a redraw, and a poll) and otherwise sleeps in `recv_timeout`.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ratatui::crossterm::event::Event as TermEvent;

use super::conn::{self, Backoff, Msg, Work};
use super::input::{self, Action, Mode, Purpose, Ui};
use super::state::{State, Watch};
use super::terminal::{self, Screen};
use super::view::{self, Scene, Theme};
use super::watch;
use super::wire::first_line;
use crate::client::ClientError;

/// Shortest time between two frames while events arrive.
const FRAME: Duration = Duration::from_millis(100);
/// The poll's period.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Messages the threads may queue before they wait for the loop.
const CHANNEL_BOUND: usize = 1024;
/// Messages handled between two looks at the clock, so a flood of events
/// cannot hold a key press or a frame back for long.
const DRAIN: usize = 256;

struct App {
    state: State,
    ui: Ui,
    theme: Theme,
    work: Sender<Work>,
    poll_in_flight: bool,
    next_poll: Instant,
    backoff: Backoff,
    quit: bool,
    /// Something changed since the last frame.
    dirty: bool,
    /// Draw now, not at the next frame (a key was pressed).
    urgent: bool,
}

pub fn run(path: PathBuf) -> Result<(), ClientError> {
    let (tx, rx) = mpsc::sync_channel(CHANNEL_BOUND);
    terminal::forward_signals(tx.clone())
        .map_err(|e| ClientError::Usage(format!("cannot set up signal handling: {e}")))?;
    let mut screen = Screen::enter()
        .map_err(|e| ClientError::Usage(format!("cannot take over the terminal: {e}")))?;
    let (work_tx, work_rx) = mpsc::channel();
    spawn("top-requests", {
        let (path, tx) = (path.clone(), tx.clone());
        move || conn::requests(path, work_rx, tx)
    })?;
    spawn("top-watch", {
        let (path, tx) = (path.clone(), tx.clone());
        move || watch::watch(path, tx)
    })?;
    spawn("top-input", move || read_input(tx))?;

    let mut app = App {
        state: State::new(path.display().to_string()),
        ui: Ui::default(),
        theme: Theme::from_env(),
        work: work_tx,
        poll_in_flight: false,
        next_poll: Instant::now(),
        backoff: Backoff::default(),
        quit: false,
        dirty: true,
        urgent: true,
    };
    app.run(&mut screen, &rx)
        .map_err(|e| ClientError::Protocol(format!("cannot draw on the terminal: {e}")))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), ClientError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| ClientError::Usage(format!("cannot start a thread: {e}")))
}

/// The input thread: blocks on the terminal.
fn read_input(tx: SyncSender<Msg>) {
    loop {
        let msg = match ratatui::crossterm::event::read() {
            Ok(e) => Msg::Input(e),
            Err(e) => Msg::InputGone(e.to_string()),
        };
        let gone = matches!(msg, Msg::InputGone(_));
        if tx.send(msg).is_err() || gone {
            return;
        }
    }
}

/// The next wall-clock second, as an `Instant`.
fn next_second(now: Instant) -> Instant {
    let ms = Timestamp::now().subsec_millisecond().max(0) as u64;
    now + Duration::from_millis(1000 - ms.min(999))
}

impl App {
    fn run(&mut self, screen: &mut Screen, rx: &Receiver<Msg>) -> std::io::Result<()> {
        let mut last_frame = Instant::now() - FRAME;
        let mut tick = Instant::now();
        while !self.quit {
            let now = Instant::now();
            if !self.poll_in_flight && now >= self.next_poll {
                self.send_poll(now);
            }
            if self.urgent || now >= tick || (self.dirty && now >= last_frame + FRAME) {
                self.draw(screen)?;
                last_frame = now;
                tick = next_second(now);
                (self.dirty, self.urgent) = (false, false);
            }
            let mut wake = tick;
            if !self.poll_in_flight {
                wake = wake.min(self.next_poll);
            }
            if self.dirty {
                wake = wake.min(last_frame + FRAME);
            }
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            for msg in rx.try_iter().take(DRAIN) {
                self.handle(msg);
            }
        }
        Ok(())
    }

    fn draw(&self, screen: &mut Screen) -> std::io::Result<()> {
        let scene = Scene {
            state: &self.state,
            ui: &self.ui,
            now: Timestamp::now(),
            theme: self.theme,
        };
        screen.terminal.draw(|frame| view::draw(frame, &scene))?;
        Ok(())
    }

    fn send_poll(&mut self, now: Instant) {
        let jobs = self.state.poll_jobs();
        if self.work.send(Work::Poll { jobs }).is_ok() {
            self.poll_in_flight = true;
            self.next_poll = now + POLL_EVERY;
        } else {
            self.quit = true;
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = Timestamp::now();
        self.dirty = true;
        match msg {
            Msg::Input(TermEvent::Key(key)) => {
                self.urgent = true;
                match input::on_key(&mut self.ui, &self.state, key) {
                    Action::None => {}
                    Action::Quit => self.quit = true,
                    Action::Say(text) => self.state.say(text, false),
                    Action::Send(outgoing) => {
                        let label = match &outgoing.purpose {
                            Purpose::Act { label, .. } => label.clone(),
                            Purpose::Detail { title, .. } => format!("loading {title}"),
                        };
                        self.state.say(format!("{label}…"), false);
                        if self.work.send(Work::Send(outgoing)).is_err() {
                            self.quit = true;
                        }
                    }
                }
            }
            Msg::Input(TermEvent::Resize(..)) => self.urgent = true,
            Msg::Input(_) => self.dirty = false,
            Msg::InputGone(e) => {
                self.state
                    .say(format!("the terminal cannot be read: {e}"), true);
                self.quit = true;
            }
            Msg::Signal => self.quit = true,
            Msg::Events(events) => {
                for e in events {
                    self.state.apply_event(e, now);
                }
            }
            Msg::Watch(w) => {
                if w == Watch::Live {
                    self.state.needs_sync = true;
                }
                self.state.watch = w;
            }
            Msg::Polled(result) => {
                self.poll_in_flight = false;
                match result {
                    Ok(poll) => {
                        self.backoff = Backoff::default();
                        self.state.apply_poll(poll, now);
                    }
                    Err(e) => {
                        let wait = self.backoff.next();
                        self.next_poll = Instant::now() + wait;
                        let retry_at = now
                            .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                            .unwrap_or(now);
                        self.state.unreachable(e, retry_at);
                    }
                }
            }
            Msg::Answer { purpose, result } => self.answered(purpose, result, now),
        }
    }

    fn answered(
        &mut self,
        purpose: Purpose,
        result: Result<serde_json::Value, String>,
        now: Timestamp,
    ) {
        match (purpose, result) {
            (Purpose::Act { label, render }, Ok(answer)) => {
                self.state.say(
                    format!("{label}: {}", first_line(&render(&answer, now))),
                    false,
                );
            }
            (Purpose::Detail { title, render }, Ok(answer)) => {
                self.state.message = None;
                if matches!(self.ui.mode, Mode::Normal) {
                    self.ui.mode = Mode::Detail {
                        title,
                        answer,
                        render,
                        scroll: 0,
                    };
                }
            }
            (Purpose::Act { label, .. } | Purpose::Detail { title: label, .. }, Err(e)) => {
                self.state.say(format!("{label}: {e}"), true);
            }
        }
    }
}
