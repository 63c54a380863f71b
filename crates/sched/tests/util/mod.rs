//! Helpers shared by the scheduler's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};

use evloop_sched::{Context, EventLoop};

/// A shared, growable log of values that callbacks append to.
#[derive(Clone, Default)]
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Log(Rc::new(RefCell::new(Vec::new())))
    }
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v);
    }
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub fn snapshot(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// What a custom exception handler saw: (message, exception message, keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub message: String,
    pub exception: Option<String>,
    pub keys: Vec<&'static str>,
}

/// Installs a handler that records every context it gets.
pub fn record_exceptions(lp: &EventLoop) -> Log<Seen> {
    let log = Log::new();
    let l2 = log.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp: &EventLoop, ctx: &Context| {
        l2.push(Seen {
            message: ctx.message().to_owned(),
            exception: ctx.exception().map(|e| e.message()),
            keys: ctx.keys().collect(),
        });
    })));
    log
}

/// Schedules `stop()` and runs the loop: exactly one iteration (asyncio's `_run_once` idiom).
pub fn run_one_iteration(lp: &EventLoop) -> std::io::Result<()> {
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop())?;
    lp.run_forever()?;
    Ok(())
}

/// Log records captured from the `log` facade by [`capture_logs`].
static RECORDS: OnceLock<Mutex<Vec<(log::Level, String)>>> = OnceLock::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Some(records) = RECORDS.get() {
            records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// Routes `log` records into a buffer; returns every record logged so far whose text contains
/// `needle` (tests in one binary run in parallel, so filter by something unique).
pub fn capture_logs() {
    RECORDS.get_or_init(|| Mutex::new(Vec::new()));
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

pub fn logged(needle: &str) -> Vec<(log::Level, String)> {
    RECORDS
        .get()
        .map(|r| {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, text)| text.contains(needle))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}
