//! The read buffers every transport of a loop shares (uvloop's design): an idle connection owns
//! no read buffer, and a readable socket is read straight into the loop's buffer before its
//! protocol sees the bytes. Stream transports share one of 256 KiB, datagram endpoints another
//! of 256 KiB.

use std::cell::Cell;
use std::rc::Rc;

use evloop_sched::EventLoop;

/// The stream transports' buffer: the most one read hands to a protocol, 256 KiB as
/// asyncio's and uvloop's reads (uvloop's 256,000 bytes). A 100 KiB message then arrives in
/// one read and goes back in one write, where a 64 KiB buffer took two of each: on
/// `echo_100k_c10` (`strace -c`, per message) 1.0 `read` and 1.0 `sendto` against 2.0 and
/// 2.0, and in one run, interleaved with a 64 KiB build of the same server, 1.32× its rate
/// and level with or above uvloop, which reads whole messages as well. The buffer is one per
/// loop, not per connection.
pub(crate) const STREAM_READ_SIZE: usize = 256 * 1024;

/// The datagram endpoints' buffer: the largest datagram received whole (asyncio's `max_size`;
/// a UDP datagram is at most 65,507 bytes, but a Unix one can be larger).
pub(crate) const DATAGRAM_READ_SIZE: usize = 256 * 1024;

/// A loop's shared buffer of `N` bytes, reached through [`EventLoop::local`].
#[derive(Default)]
pub(crate) struct SharedBuffer<const N: usize> {
    /// Taken out while in use, and put back after; allocated on first use.
    buf: Cell<Option<Box<[u8]>>>,
}

/// The stream transports' shared buffer.
pub(crate) type ReadBuffer = SharedBuffer<STREAM_READ_SIZE>;

/// The datagram endpoints' shared buffer.
pub(crate) type DatagramBuffer = SharedBuffer<DATAGRAM_READ_SIZE>;

impl<const N: usize> SharedBuffer<N> {
    /// The loop's shared buffer of this size.
    pub(crate) fn of(lp: &EventLoop) -> Rc<SharedBuffer<N>> {
        lp.local::<SharedBuffer<N>>()
    }

    /// Runs `f` with the buffer. A nested call (from inside `f`) gets a buffer of its own, so
    /// it is never an error, only an allocation.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buf = self
            .buf
            .take()
            .unwrap_or_else(|| vec![0; N].into_boxed_slice());
        let out = f(&mut buf);
        self.buf.set(Some(buf));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_reused_and_nested_use_gets_its_own() {
        let rb = ReadBuffer::default();
        let first = rb.with(|b| {
            b[0] = 7;
            b.as_ptr()
        });
        let (again, nested, seen) = rb.with(|outer| {
            let nested = rb.with(|inner| inner.as_ptr());
            (outer.as_ptr(), nested, outer[0])
        });
        assert_eq!(first, again);
        assert_ne!(again, nested);
        assert_eq!(seen, 7);
        assert_eq!(rb.with(|b| b.len()), STREAM_READ_SIZE);
        assert_eq!(
            DatagramBuffer::default().with(|b| b.len()),
            DATAGRAM_READ_SIZE
        );
    }
}
