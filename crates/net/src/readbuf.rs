//! The read buffer every transport of a loop shares (uvloop's design): an idle connection owns
//! no read buffer, and a readable socket is read straight into this one before its protocol
//! sees the bytes.

use std::cell::Cell;

use evloop_sched::EventLoop;

/// The size of the shared buffer: the largest datagram an endpoint receives whole (asyncio's
/// `max_size` is 256 KiB too).
pub(crate) const READ_BUFFER_SIZE: usize = 256 * 1024;

/// The most one stream read takes. asyncio and uvloop read up to 256 KiB; 64 KiB measured
/// faster here for large messages (`echo_100k_c10`: about 0.9× bare epoll against 0.6× with
/// 256 KiB, interleaved runs of `cargo xtask bench --group echo`), and changes nothing for
/// small ones.
pub(crate) const STREAM_READ_SIZE: usize = 64 * 1024;

/// The loop's shared read buffer, reached through [`EventLoop::local`].
#[derive(Default)]
pub(crate) struct ReadBuffer {
    /// Taken out while in use, and put back after; allocated on first use.
    buf: Cell<Option<Box<[u8]>>>,
}

impl ReadBuffer {
    /// The loop's shared buffer.
    pub(crate) fn of(lp: &EventLoop) -> std::rc::Rc<ReadBuffer> {
        lp.local::<ReadBuffer>()
    }

    /// Runs `f` with the buffer. A nested call (from inside `f`) gets a buffer of its own, so
    /// it is never an error, only an allocation.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buf = self
            .buf
            .take()
            .unwrap_or_else(|| vec![0; READ_BUFFER_SIZE].into_boxed_slice());
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
        assert_eq!(rb.with(|b| b.len()), READ_BUFFER_SIZE);
    }
}
