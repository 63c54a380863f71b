//! Where the incoming ciphertext stands in TLS record framing, so that an end of file without
//! `close_notify` can be told apart: between records (nothing was cut, as with a plain end
//! of file) or inside one (data was truncated).

/// A TLS record is a 5-byte header (type, version, a 16-bit length) and `length` bytes.
const HEADER: usize = 5;

/// Counts the incoming bytes against record boundaries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Records {
    /// Header bytes seen of the record being read (0 to 5).
    header_seen: usize,
    /// The high byte of the length, once seen.
    length_high: u8,
    /// Body bytes still to come of the current record.
    body_left: usize,
}

impl Records {
    /// Accounts for `bytes`, the next bytes of the stream.
    pub(crate) fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            match self.header_seen {
                3 => self.length_high = bytes[0],
                4 => self.body_left = usize::from(u16::from_be_bytes([self.length_high, bytes[0]])),
                _ => {}
            }
            self.header_seen += 1;
            bytes = &bytes[1..];
            if self.header_seen == HEADER {
                self.header_seen = 0;
            }
        }
    }

    /// Whether the stream stopped inside a record.
    pub(crate) fn mid_record(&self) -> bool {
        self.header_seen > 0 || self.body_left > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_records_in_any_slicing_end_on_a_boundary() {
        let mut stream = vec![23, 3, 3, 0, 3, b'a', b'b', b'c'];
        stream.extend_from_slice(&[23, 3, 3, 1, 0]);
        stream.extend(std::iter::repeat_n(7u8, 256));
        for cut in 0..=stream.len() {
            let mut r = Records::default();
            r.advance(&stream[..cut]);
            let boundary = cut == 0 || cut == 8 || cut == stream.len();
            assert_eq!(r.mid_record(), !boundary, "cut at {cut}");
            r.advance(&stream[cut..]);
            assert!(!r.mid_record());
        }
    }
}
