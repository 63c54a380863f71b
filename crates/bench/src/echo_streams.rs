//! The `evloop_streams` echo server: asyncio's streams echo shape on evloop's streams
//! (`start_server`, then `read` / `write` / `drain` in a task per connection).

use std::io;

use evloop::prelude::*;
use evloop::socket2::Socket;
use evloop::{ServerOptions, StreamReader, StreamWriter};

use crate::echo_servers::ECHO_BUF;

/// The listen backlog's per-event accept count (as the protocol server's).
const ACCEPT_BATCH: u32 = 4096;

/// Serves on `listener` until an I/O error.
pub(crate) fn serve_evloop_streams(listener: Socket) -> io::Result<()> {
    let lp = EventLoop::new()?;
    let opts = ServerOptions::new().sock(listener).backlog(ACCEPT_BATCH);
    let server = lp.run_until_complete(evloop::start_server(echo, opts, None))??;
    lp.run_forever().map_err(io::Error::from)?;
    server.close();
    Ok(())
}

/// One connection: what asyncio users write (`data = await reader.read(n)`,
/// `writer.write(data)`, `await writer.drain()`), until end of file.
async fn echo(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let data = reader.read(ECHO_BUF).await?;
        if data.is_empty() {
            return Ok(());
        }
        writer.write(&data);
        writer.drain().await?;
    }
}
