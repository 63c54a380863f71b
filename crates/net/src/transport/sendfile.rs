//! The transport's side of `sendfile` (`crate::sendfile`): asyncio's empty waiter
//! (`_make_empty_waiter`), the fallback's `drain`, and the fd's writability while a native
//! `sendfile(2)` owns the socket.
//!
//! # Ground rules
//!
//! - One `sendfile` at a time per transport ([`flag::SENDFILE`]); a second one is refused.
//! - While a native one runs ([`flag::SENDFILE_NATIVE`]) the write buffer is empty and stays
//!   so: `write`/`writelines` are refused (asyncio raises "unable to write; sendfile is in
//!   progress"; evloop's `write` returns nothing, so the data is dropped and reported), and
//!   the fd's writer is the sendfile's, registered through the transport's claim.
//! - The waiting `sendfile` leaves its waker in [`Inner::waiter`]; the transport wakes it when
//!   the buffer empties, when writing resumes, when it closes and when it is released. The
//!   `sendfile` re-checks its condition on every wake-up.

use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_sched::Context as Report;

use super::inner::{Inner, flag};

/// The error of a `sendfile` on a transport that closed under it (asyncio's fallback:
/// `ConnectionError("Connection closed by peer")`).
pub(crate) fn closed_under_sendfile() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed by peer")
}

impl Inner {
    /// Marks a `sendfile` as running; `native` also refuses writes until
    /// [`end_sendfile`](Inner::end_sendfile).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if another `sendfile` runs on this transport.
    pub(crate) fn begin_sendfile(&self, native: bool) -> io::Result<()> {
        if self.has(flag::SENDFILE) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "sendfile: another sendfile is in progress on this transport",
            ));
        }
        self.set(flag::SENDFILE);
        if native {
            self.set(flag::SENDFILE_NATIVE);
        }
        Ok(())
    }

    /// Ends what [`begin_sendfile`](Inner::begin_sendfile) began: writes are accepted again
    /// and the sendfile's writer, if any, is removed.
    pub(crate) fn end_sendfile(&self) {
        if self.has(flag::SENDFILE_NATIVE) {
            // While native, the buffer is empty, so the only writer is the sendfile's.
            self.remove_writer();
        }
        self.unset(flag::SENDFILE | flag::SENDFILE_NATIVE);
        self.waiter.take();
    }

    /// The fd a native `sendfile` writes to.
    ///
    /// # Errors
    ///
    /// "connection closed by peer" once `connection_lost` is scheduled (by `close()`,
    /// `abort()` or a fatal error) or the fd is closed.
    pub(crate) fn sendfile_fd(&self) -> io::Result<RawFd> {
        match self.fd() {
            Some(fd) if !self.has(flag::LOST) => Ok(fd),
            _ => Err(closed_under_sendfile()),
        }
    }

    /// Ready once the write buffer is empty (asyncio's empty waiter).
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has(flag::LOST) {
            return Poll::Ready(Err(closed_under_sendfile()));
        }
        if self.buffer_size() == 0 {
            return Poll::Ready(Ok(()));
        }
        self.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// Ready once writing is not paused (the fallback's `drain`): the buffer is at or below
    /// the low-water mark.
    pub(crate) fn poll_unpaused(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has(flag::LOST) {
            return Poll::Ready(Err(closed_under_sendfile()));
        }
        if !self.is_writing_paused() {
            return Poll::Ready(Ok(()));
        }
        self.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// Waits for the fd to be writable during a native `sendfile`: the claim's writer wakes
    /// the waiter. The writer stays until [`end_sendfile`](Inner::end_sendfile).
    ///
    /// # Errors
    ///
    /// The loop's error if the writer cannot be added (a closed loop).
    pub(crate) fn wait_writable(self: &Rc<Self>, cx: &mut Context<'_>) -> io::Result<()> {
        self.waiter.set(Some(cx.waker().clone()));
        if self.has(flag::WRITER) {
            return Ok(());
        }
        let me = self.clone();
        let claim = self.claim.borrow();
        let Some(claim) = claim.as_ref() else {
            return Err(closed_under_sendfile());
        };
        claim.add_writer(move || me.wake_waiter())?;
        self.set(flag::WRITER);
        Ok(())
    }

    /// A write made while a native `sendfile` owns the socket: dropped and reported.
    pub(super) fn refuse_during_sendfile(&self) {
        self.lp.call_exception_handler(
            Report::new("write() while sendfile is in progress: the data was dropped")
                .with("transport", self.describe())
                .with("protocol", self.protocol_name),
        );
    }
}
