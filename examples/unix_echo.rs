//! An echo server on a Unix stream socket. Serves until SIGINT or SIGTERM; on close, the
//! socket file is removed.
//!
//! Usage: `unix_echo [PATH]` (default: a fresh path in the temp dir); it prints
//! `Serving on PATH`.

use evloop::prelude::*;
use evloop::{Protocol, Transport, UnixServerOptions};

#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.transport = None;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("evloop-unix-echo-{}.sock", std::process::id()))
        });
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(lp.create_unix_server(
        Echo::default,
        &path,
        UnixServerOptions::new(),
    ))??;
    println!("Serving on {}", path.display());
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    lp.run_forever()?;
    server.close();
    server.abort_clients();
    lp.close()?;
    println!("Server closed");
    Ok(())
}
