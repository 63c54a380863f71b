//! Code written against the `futures-io` traits runs on evloop's streams unchanged:
//! `futures_util::io::copy` / `copy_buf` and `AsyncBufReadExt::lines`.

mod util;

use std::io;

use evloop_net::{ConnectOptions, ServerOptions, StreamReader, StreamWriter, start_server};
use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, copy, copy_buf};
use futures_util::stream::StreamExt;
use util::streams::run;

/// Starts an echo server whose handler is `futures_util::io::copy` (or `copy_buf`, which
/// reads through `fill_buf`), and returns its port.
async fn copy_server(buffered: bool) -> io::Result<(evloop_net::Server, u16)> {
    let server = start_server(
        move |mut reader: StreamReader, mut writer: StreamWriter| async move {
            if buffered {
                copy_buf(&mut reader, &mut writer).await?;
            } else {
                copy(&mut reader, &mut writer).await?;
            }
            // The inherent `close` (asyncio's) shadows `AsyncWriteExt::close`.
            AsyncWriteExt::close(&mut writer).await
        },
        ServerOptions::new().host("127.0.0.1").port(0),
        None,
    )
    .await?;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not inet"))?
        .port();
    Ok((server, port))
}

#[test]
fn copy_echoes_and_lines_reads_them_back() -> io::Result<()> {
    run(async {
        let (server, port) = copy_server(false).await?;
        let (reader, mut writer) =
            evloop_net::open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None)
                .await?;
        writer
            .write_all(b"first line\nsecond line\nno newline")
            .await?;
        writer.flush().await?;
        writer.write_eof();
        let lines: Vec<String> = reader.lines().map(|l| l.expect("a line")).collect().await;
        assert_eq!(lines, ["first line", "second line", "no newline"]);
        server.close();
        Ok(())
    })
}

#[test]
fn eight_megabytes_through_copy_buf_arrive_byte_exact() -> io::Result<()> {
    run(async {
        let (server, port) = copy_server(true).await?;
        let (mut reader, mut writer) =
            evloop_net::open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None)
                .await?;
        let data: Vec<u8> = (0..8usize << 20).map(|i| (i % 251) as u8).collect();
        let lp = evloop_sched::get_running_loop()?;
        let sent = data.clone();
        // The writer task respects flow control through `poll_write`, the reader below reads
        // slowly in small pieces: both sides pause and resume.
        let sending = evloop_task::LoopTaskExt::create_task(&lp, async move {
            for chunk in sent.chunks(100_000) {
                writer.write_all(chunk).await?;
                assert!(writer.transport().get_write_buffer_size() <= 64 * 1024 + 100_000);
            }
            writer.flush().await?;
            writer.write_eof();
            Ok::<_, io::Error>(writer)
        })?;
        let mut got = Vec::with_capacity(data.len());
        let mut piece = [0u8; 4096];
        loop {
            let n = AsyncReadExt::read(&mut reader, &mut piece).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
        }
        let writer = sending.await??;
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the echo differs");
        drop(writer);
        server.close();
        Ok(())
    })
}
