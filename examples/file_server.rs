//! A file over HTTP/1.1 with `sendfile`: every `GET` gets the file's bytes, sent by the kernel
//! from the page cache (`loop.sendfile` in asyncio); a `HEAD` gets the headers only. The
//! connection stays open for the next request until the client closes it or sends
//! `Connection: close`. Serves until SIGINT or SIGTERM.
//!
//! Usage: `file_server [FILE] [ADDR]` (default: a generated 1 MiB file in the temp dir, removed
//! at exit; `127.0.0.1:0`). It prints `File: PATH (N bytes)`, then `Serving on http://ADDR/`.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use evloop::prelude::*;
use evloop::{Protocol, ServerOptions, Transport};

/// The size of the generated file.
const GENERATED_LEN: usize = 1 << 20;

/// The longest request head we read before giving up on a client.
const MAX_HEAD: usize = 64 * 1024;

/// One connection: parses request heads, answers each with the file.
struct FileHttp {
    lp: EventLoop,
    path: Rc<PathBuf>,
    transport: Option<Transport>,
    pending: Vec<u8>,
    /// Requests parsed but not answered yet: `(is_head, close)`, answered one at a time.
    queue: Rc<RefCell<Vec<(bool, bool)>>>,
    /// Whether a task is answering the queue.
    busy: Rc<RefCell<bool>>,
}

impl FileHttp {
    /// Queues every complete request head in `pending`, and starts answering if idle.
    fn parse(&mut self) {
        while let Some(end) = find(&self.pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.pending[..end]).to_ascii_lowercase();
            self.pending.drain(..end + 4);
            let is_head = head.starts_with("head ");
            let close = head
                .lines()
                .any(|l| l.starts_with("connection:") && l.contains("close"));
            self.queue.borrow_mut().push((is_head, close));
        }
        if !*self.busy.borrow() && !self.queue.borrow().is_empty() {
            self.answer();
        }
    }

    /// A task that answers the queued requests in order: the headers by `write`, the file
    /// by `sendfile` (after the headers: the transport's buffer drains first).
    fn answer(&self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        let (lp, path) = (self.lp.clone(), self.path.clone());
        let (queue, busy) = (self.queue.clone(), self.busy.clone());
        *busy.borrow_mut() = true;
        let spawned = self.lp.create_task(async move {
            loop {
                let next = {
                    let mut q = queue.borrow_mut();
                    (!q.is_empty()).then(|| q.remove(0))
                };
                let Some((is_head, close)) = next else { break };
                if let Err(err) = respond(&lp, &t, &path, is_head, close).await {
                    eprintln!("file_server: {err}");
                    t.abort();
                    break;
                }
                if close {
                    t.close();
                    break;
                }
            }
            *busy.borrow_mut() = false;
        });
        if let Err(err) = spawned {
            eprintln!("file_server: {err}");
        }
    }
}

/// Sends one response: the headers, then (unless `HEAD`) the whole file.
async fn respond(
    lp: &EventLoop,
    t: &Transport,
    path: &Path,
    is_head: bool,
    close: bool,
) -> std::io::Result<()> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" },
    );
    t.write(head.as_bytes());
    if !is_head && len > 0 {
        lp.sendfile(t, &file, 0, None, true).await?;
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Protocol for FileHttp {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        if self.pending.len() > MAX_HEAD {
            // A header this long is not a request we answer.
            if let Some(t) = self.transport.take() {
                t.abort();
            }
            return;
        }
        self.parse();
    }

    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.transport = None;
    }
}

/// A file of `GENERATED_LEN` bytes of a simple pattern in the temp dir.
fn generate() -> std::io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("evloop-file-server-{}.bin", std::process::id()));
    let data: Vec<u8> = (0..GENERATED_LEN).map(|i| (i % 251) as u8).collect();
    File::create(&path)?.write_all(&data)?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (path, generated) = match args.next() {
        Some(path) => (PathBuf::from(path), false),
        None => (generate()?, true),
    };
    let addr: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    let len = std::fs::metadata(&path)?.len();
    println!("File: {} ({len} bytes)", path.display());
    let lp = EventLoop::new()?;
    let (l2, shared) = (lp.clone(), Rc::new(path.clone()));
    let server = lp.run_until_complete(
        lp.create_server(
            move || FileHttp {
                lp: l2.clone(),
                path: shared.clone(),
                transport: None,
                pending: Vec::new(),
                queue: Rc::default(),
                busy: Rc::default(),
            },
            ServerOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port()),
        ),
    )??;
    let bound = server.sockets()[0].local_addr()?;
    println!(
        "Serving on http://{}/",
        bound.as_socket().ok_or("not inet")?
    );
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    lp.run_forever()?;
    server.close();
    server.abort_clients();
    lp.close()?;
    if generated {
        std::fs::remove_file(&path)?;
    }
    println!("Server closed");
    Ok(())
}
