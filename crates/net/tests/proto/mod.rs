//! A protocol that records what its transport tells it, for the transport tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use evloop_net::{Protocol, Transport};
use evloop_sched::EventLoop;
use std::time::Duration;

/// What a [`Recorder`] was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(Vec<u8>),
    Eof,
    Lost(Option<io::ErrorKind>),
    Pause,
    Resume,
}

/// Shared log of events.
pub type Log = Rc<RefCell<Vec<Ev>>>;

/// Records every call; optional behaviours for the tests.
#[derive(Default)]
pub struct Recorder {
    pub log: Log,
    pub transport: Option<Transport>,
    pub keep_open: bool,
    pub pause_in_made: bool,
    pub panic_in_made: bool,
    pub panic_in_data: bool,
    pub panic_in_pause: bool,
    /// Echo every chunk back.
    pub echo: bool,
    /// Stop this loop when connection_lost arrives.
    pub stop_on_lost: Option<EventLoop>,
    /// Stop this loop when this many data bytes arrived.
    pub stop_at: Option<(usize, EventLoop)>,
    pub received: usize,
    pub lost_error: Option<io::Error>,
}

impl Recorder {
    pub fn new(log: &Log) -> Recorder {
        Recorder {
            log: log.clone(),
            ..Recorder::default()
        }
    }

    /// All data received, joined.
    pub fn data(log: &Log) -> Vec<u8> {
        log.borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The events with all data chunks merged into one.
    pub fn shape(log: &Log) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for e in log.borrow().iter() {
            match (out.last_mut(), e) {
                (Some(Ev::Data(acc)), Ev::Data(d)) => acc.extend_from_slice(d),
                _ => out.push(e.clone()),
            }
        }
        out
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: &Transport) {
        self.log.borrow_mut().push(Ev::Made);
        self.transport = Some(transport.clone());
        if self.pause_in_made {
            transport.pause_reading();
        }
        if self.panic_in_made {
            panic!("boom in connection_made");
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().push(Ev::Data(data.to_vec()));
        self.received += data.len();
        if self.panic_in_data {
            panic!("boom in data_received");
        }
        if self.echo {
            if let Some(t) = &self.transport {
                t.write(data);
            }
        }
        if let Some((n, lp)) = &self.stop_at {
            if self.received >= *n {
                lp.stop();
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push(Ev::Eof);
        self.keep_open
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.log
            .borrow_mut()
            .push(Ev::Lost(err.as_ref().map(io::Error::kind)));
        self.lost_error = err;
        self.transport = None;
        if let Some(lp) = &self.stop_on_lost {
            lp.stop();
        }
    }

    fn pause_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Pause);
        if self.panic_in_pause {
            panic!("boom in pause_writing");
        }
    }

    fn resume_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Resume);
    }
}

/// Runs the loop until `cond` holds, at most `max` iterations of at most 100 ms each; returns
/// whether it held.
pub fn run_until(lp: &EventLoop, max: usize, mut cond: impl FnMut() -> bool) -> io::Result<bool> {
    lp.run_forever_setup()?;
    let mut met = cond();
    for _ in 0..max {
        if met {
            break;
        }
        lp.run_once_timeout(Duration::from_millis(100))?;
        met = cond();
    }
    lp.run_forever_cleanup()?;
    Ok(met)
}

/// Runs exactly `n` iterations of the loop.
pub fn iterate(lp: &EventLoop, n: usize) -> io::Result<()> {
    for _ in 0..n {
        let l2 = lp.clone();
        lp.call_soon(move || l2.stop())?;
        lp.run_forever()?;
    }
    Ok(())
}
