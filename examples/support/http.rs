//! The keep-alive HTTP/1.1 responder of `http_hello` and `https_hello`: every request on a
//! connection gets `Hello, World!`; the connection stays open until the client closes it or
//! sends `Connection: close`. Over TLS it is the same protocol: the transport encrypts.

use evloop::{Protocol, Transport};

const BODY: &str = "Hello, World!\n";

/// Parses requests out of the bytes received and answers each one.
#[derive(Default)]
pub(crate) struct Http {
    transport: Option<Transport>,
    pending: Vec<u8>,
}

impl Http {
    /// Answers every complete request in `pending`.
    fn answer(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        while let Some(end) = find(&self.pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.pending[..end]).to_ascii_lowercase();
            // Requests with a body: skip it (this responder ignores bodies).
            let body_len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if self.pending.len() < end + 4 + body_len {
                return;
            }
            self.pending.drain(..end + 4 + body_len);
            let close = head
                .lines()
                .any(|l| l.starts_with("connection:") && l.contains("close"));
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{BODY}",
                BODY.len(),
                if close { "Connection: close\r\n" } else { "" },
            );
            t.write(response.as_bytes());
            if close {
                t.close();
                return;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Protocol for Http {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        if self.pending.len() > 64 * 1024 {
            // A header this long is not a request we answer.
            if let Some(t) = self.transport.take() {
                t.abort();
            }
            return;
        }
        self.answer();
    }

    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.transport = None;
    }
}
