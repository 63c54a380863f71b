//! The state a stream's reader, writer and protocol share, and [`StreamProtocol`], the
//! [`Protocol`] that feeds it (asyncio's `StreamReaderProtocol` with `FlowControlMixin`).
//!
//! # Ground rules
//!
//! - Everything lives on the loop's thread; the state is cells, each borrow short. No borrow
//!   is held across a call into the transport (which may call the protocol) or a wake.
//! - The protocol appends what arrives to `incoming`; the reader moves it into a buffer of
//!   its own when it needs data (a swap when that buffer is empty, so no copy and no
//!   allocation), which is why `fill_buf` can lend a slice. `held` is how much the reader
//!   still holds, so that the protocol can count the whole buffer against the limit.
//! - A waiting reader leaves one waker; the protocol wakes it only if there is one.
//!   Writers waiting in `drain` leave theirs in a list, woken all at once on resume or loss.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::Waker;

use evloop_sched::{Context, EventLoop, Exception};
use evloop_task::LoopTaskExt;

use super::error::copy_error;
use super::reader::StreamReader;
use super::writer::StreamWriter;
use crate::protocol::Protocol;
use crate::transport::Transport;

/// How a connection ended, once it has.
enum Lost {
    Open,
    Closed,
    Failed(io::Error),
}

/// What the reader, the writer and the protocol of one stream share.
pub(crate) struct Shared {
    pub(super) limit: usize,
    /// Bytes arrived and not yet taken by the reader.
    pub(super) incoming: RefCell<Vec<u8>>,
    /// Bytes the reader holds, unread.
    pub(super) held: Cell<usize>,
    pub(super) eof: Cell<bool>,
    /// The reader's exception (asyncio's `StreamReader._exception`): the error that ended
    /// the connection.
    error: RefCell<Option<io::Error>>,
    read_waker: RefCell<Option<Waker>>,
    /// Reading is paused because more than 2 × limit is buffered.
    pub(super) read_paused: Cell<bool>,
    /// The transport, from `connection_made` to `connection_lost`.
    transport: RefCell<Option<Transport>>,
    /// The transport asked us to stop writing (`pause_writing`).
    write_paused: Cell<bool>,
    lost: RefCell<Lost>,
    drain_waiters: RefCell<Vec<Waker>>,
    close_waiters: RefCell<Vec<Waker>>,
}

impl Shared {
    pub(crate) fn new(limit: usize) -> Rc<Shared> {
        Rc::new(Shared {
            limit,
            incoming: RefCell::new(Vec::new()),
            held: Cell::new(0),
            eof: Cell::new(false),
            error: RefCell::new(None),
            read_waker: RefCell::new(None),
            read_paused: Cell::new(false),
            transport: RefCell::new(None),
            write_paused: Cell::new(false),
            lost: RefCell::new(Lost::Open),
            drain_waiters: RefCell::new(Vec::new()),
            close_waiters: RefCell::new(Vec::new()),
        })
    }

    /// A copy of the reader's exception, if the connection failed.
    pub(super) fn error(&self) -> Option<io::Error> {
        self.error.borrow().as_ref().map(copy_error)
    }

    /// The transport while the connection is up.
    pub(super) fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }

    /// Leaves `waker` to be woken by the next data, end of file or failure.
    pub(super) fn set_read_waker(&self, waker: &Waker) {
        let mut slot = self.read_waker.borrow_mut();
        match &*slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake_reader(&self) {
        let waker = self.read_waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resumes reading if it was paused (asyncio's `_wait_for_data` does so before waiting,
    /// or a read of more than the buffer holds would wait forever).
    pub(super) fn resume_reading(&self) {
        if self.read_paused.replace(false)
            && let Some(t) = self.transport()
        {
            t.resume_reading();
        }
    }

    /// Resumes reading once the reader holds at most `limit` bytes (asyncio's
    /// `_maybe_resume_transport`).
    pub(super) fn maybe_resume_reading(&self) {
        if self.read_paused.get() && self.buffered() <= self.limit {
            self.resume_reading();
        }
    }

    /// Everything buffered, in the reader's hands or not.
    pub(super) fn buffered(&self) -> usize {
        self.held.get() + self.incoming.borrow().len()
    }

    pub(super) fn is_write_paused(&self) -> bool {
        self.write_paused.get()
    }

    /// Whether `connection_lost` came, and if so, with which outcome (a copy of the error).
    pub(super) fn lost(&self) -> Option<io::Result<()>> {
        match &*self.lost.borrow() {
            Lost::Open => None,
            Lost::Closed => Some(Ok(())),
            Lost::Failed(err) => Some(Err(copy_error(err))),
        }
    }

    pub(super) fn add_drain_waiter(&self, waker: &Waker) {
        let mut waiters = self.drain_waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    pub(super) fn add_close_waiter(&self, waker: &Waker) {
        let mut waiters = self.close_waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn wake_all(list: &RefCell<Vec<Waker>>) {
        let waiters = std::mem::take(&mut *list.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

/// The client callback of `start_server`, shared by every connection of the server.
pub(crate) type ClientCallback = Rc<RefCell<dyn FnMut(StreamReader, StreamWriter) -> ClientTask>>;

/// What a client callback returns, boxed: the future the connection's task runs.
pub(crate) type ClientTask = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>>>>;

/// The [`Protocol`] behind a stream: it feeds the [`Shared`] state, and on a server it starts
/// the client callback's task in `connection_made`.
pub(crate) struct StreamProtocol {
    shared: Rc<Shared>,
    client: Option<(EventLoop, ClientCallback)>,
}

impl StreamProtocol {
    pub(crate) fn new(shared: Rc<Shared>) -> StreamProtocol {
        StreamProtocol {
            shared,
            client: None,
        }
    }

    pub(crate) fn with_client(
        shared: Rc<Shared>,
        lp: EventLoop,
        client: ClientCallback,
    ) -> StreamProtocol {
        StreamProtocol {
            shared,
            client: Some((lp, client)),
        }
    }

    /// Starts the client callback's task for a new connection (asyncio's
    /// `StreamReaderProtocol.connection_made` with a `client_connected_cb`). A task that
    /// fails (an error, a panic) or is cancelled closes the transport, as asyncio 3.12+ does;
    /// a failure is reported to the exception handler first.
    fn start_client(&self, lp: &EventLoop, client: &ClientCallback, transport: &Transport) {
        let reader = StreamReader::new(self.shared.clone());
        let writer = StreamWriter::new(transport.clone(), self.shared.clone());
        let fut = (client.borrow_mut())(reader, writer);
        let task = match lp.create_task(fut) {
            Ok(task) => task,
            Err(err) => {
                lp.call_exception_handler(
                    Context::new("Cannot start the client_connected_cb task")
                        .with_exception(Exception::from_error(io::Error::from(err)))
                        .with("transport", transport.clone()),
                );
                transport.abort();
                return;
            }
        };
        let t2 = transport.clone();
        let l2 = lp.clone();
        task.add_done_callback(move |task| {
            let failure = match task.take_result() {
                Ok(Ok(())) => return,
                Ok(Err(err)) => Some(Exception::from_error(err)),
                Err(err) if err.is_cancelled() => None,
                Err(err) => Some(
                    err.take_exception()
                        .unwrap_or_else(|| Exception::from_error(io::Error::from(err))),
                ),
            };
            if let Some(exception) = failure {
                l2.call_exception_handler(
                    Context::new("Unhandled exception in client_connected_cb")
                        .with_exception(exception)
                        .with("transport", t2.clone()),
                );
            }
            t2.close();
        });
    }
}

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        *self.shared.transport.borrow_mut() = Some(transport.clone());
        if let Some((lp, client)) = self.client.take() {
            self.start_client(&lp, &client, transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        let shared = &self.shared;
        let total = {
            let mut incoming = shared.incoming.borrow_mut();
            incoming.extend_from_slice(data);
            incoming.len() + shared.held.get()
        };
        shared.wake_reader();
        if !shared.read_paused.get() && total > 2 * shared.limit {
            // The transport is taken out of the cell first: pausing never calls us back, but
            // no borrow is held across a call into the transport.
            if let Some(t) = shared.transport() {
                t.pause_reading();
                shared.read_paused.set(true);
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        self.shared.eof.set(true);
        self.shared.wake_reader();
        // Keep the connection half-open: the writer may still write (asyncio returns True
        // unless over TLS).
        true
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        let shared = &self.shared;
        let outcome = match err {
            None => {
                shared.eof.set(true);
                Lost::Closed
            }
            Some(err) => {
                *shared.error.borrow_mut() = Some(copy_error(&err));
                Lost::Failed(err)
            }
        };
        *shared.lost.borrow_mut() = outcome;
        // Breaks the cycle transport → protocol → shared → transport.
        let transport = shared.transport.borrow_mut().take();
        drop(transport);
        shared.wake_reader();
        Shared::wake_all(&shared.drain_waiters);
        Shared::wake_all(&shared.close_waiters);
    }

    fn pause_writing(&mut self) {
        self.shared.write_paused.set(true);
    }

    fn resume_writing(&mut self) {
        self.shared.write_paused.set(false);
        Shared::wake_all(&self.shared.drain_waiters);
    }
}
