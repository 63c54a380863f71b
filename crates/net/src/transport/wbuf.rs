//! A transport's write buffer: the bytes the kernel would not take yet, in order.

/// Buffered bytes are `data[head..]`. Sent bytes are dropped from the front by moving `head`;
/// the vector is compacted when the sent part is at least half of it, and its memory is given
/// back once it drains, so an idle connection holds no write buffer.
#[derive(Default)]
pub(crate) struct WriteBuf {
    data: Vec<u8>,
    head: usize,
}

/// Capacity kept after the buffer drains; anything larger is freed.
const KEEP_CAPACITY: usize = 0;

impl WriteBuf {
    /// Buffered bytes.
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffered bytes, oldest first.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data[self.head..]
    }

    /// Appends `bytes` after everything buffered.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.data.len() / 2 {
            self.data.drain(..self.head);
            self.head = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Drops the first `n` buffered bytes (they were sent).
    pub(crate) fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.data.len());
        if self.head == self.data.len() {
            self.clear();
        }
    }

    /// Drops everything and gives the memory back.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
        } else {
            self.data.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_across_pushes_and_partial_sends() {
        let mut b = WriteBuf::default();
        b.push(b"hello ");
        b.consume(2);
        b.push(b"world");
        assert_eq!(b.as_slice(), b"llo world");
        b.consume(5);
        b.push(b"!");
        assert_eq!(b.as_slice(), b"orld!");
        assert_eq!(b.len(), 5);
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!(b.data.capacity(), 0, "a drained buffer holds no memory");
    }

    #[test]
    fn consuming_more_than_buffered_empties_it() {
        let mut b = WriteBuf::default();
        b.push(b"abc");
        b.consume(10);
        assert!(b.is_empty());
        assert_eq!(b.as_slice(), b"");
    }
}
