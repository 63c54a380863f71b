//! Helpers shared by the task crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::rc::Rc;

use evloop_sched::{Context, EventLoop};

/// A shared, growable log of values that callbacks and tasks append to.
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

/// Schedules `stop()` and runs the loop: exactly one iteration.
pub fn run_one_iteration(lp: &EventLoop) -> std::io::Result<()> {
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop())?;
    lp.run_forever()?;
    Ok(())
}
