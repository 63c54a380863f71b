//! The stream writer: drain and flow control, closing, half-closing, after CPython's
//! `Lib/test/test_asyncio/test_streams.py`.

mod util;

use std::io::{self, Read};
use std::net::Shutdown;
use std::thread;

use evloop_task::{LoopTaskExt, sleep};
use util::streams::{reset, run, stream_to_peer};

// CPython: test_streams.py::test_drain_raises
#[test]
fn drain_on_a_connection_the_peer_closed_errors() -> io::Result<()> {
    run(async {
        let (_reader, writer, peer) = stream_to_peer(None).await?;
        drop(peer);
        let mut last = Ok(());
        for _ in 0..10_000 {
            writer.write(b"foo");
            last = writer.drain().await;
            if last.is_err() {
                break;
            }
        }
        let err = last.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
        Ok(())
    })
}

// CPython: streams.py::FlowControlMixin._drain_helper (waits while paused; the peer's reset
// wakes it with the error instead of leaving it waiting)
#[test]
fn drain_waiting_on_a_full_buffer_errors_when_the_peer_resets() -> io::Result<()> {
    run(async {
        let (_reader, writer, peer) = stream_to_peer(None).await?;
        writer.write(&vec![b'x'; 8 << 20]);
        assert!(writer.transport().get_write_buffer_size() > 64 * 1024);
        let lp = writer.transport().get_loop();
        lp.call_later(0.05, move || drop(reset(peer)))?;
        let err = writer.drain().await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
        Ok(())
    })
}

// CPython: test_streams.py::test_multiple_drain (every waiter is woken on resume)
#[test]
fn drain_waits_while_paused_and_wakes_every_waiter() -> io::Result<()> {
    run(async {
        let (_reader, writer, mut peer) = stream_to_peer(None).await?;
        const SIZE: usize = 4 << 20;
        writer.write(&vec![b'x'; SIZE]);
        assert!(writer.transport().is_writing_paused());
        let writer = std::rc::Rc::new(writer);
        let lp = writer.transport().get_loop();
        let w2 = writer.clone();
        let second = lp.create_task(async move { w2.drain().await })?;
        // Nobody reads yet: drain is still waiting after a while.
        let w3 = writer.clone();
        let first = lp.create_task(async move { w3.drain().await })?;
        sleep(0.05).await?;
        assert!(!first.done() && !second.done());
        let reading = thread::spawn(move || {
            let mut got = vec![0; SIZE];
            peer.read_exact(&mut got).map(|_| got.len())
        });
        first.await??;
        second.await??;
        assert!(writer.transport().get_write_buffer_size() <= 16 * 1024);
        writer.close();
        writer.wait_closed().await?;
        assert_eq!(reading.join().expect("reader thread")?, SIZE);
        Ok(())
    })
}

// CPython: test_streams.py::test_wait_closed_on_close, test_eof_feed_when_closing_writer
#[test]
fn wait_closed_completes_after_close_and_the_reader_sees_eof() -> io::Result<()> {
    run(async {
        let (mut reader, writer, _peer) = stream_to_peer(None).await?;
        assert!(!writer.is_closing());
        writer.close();
        assert!(writer.is_closing());
        writer.wait_closed().await?;
        // Again, at once.
        writer.wait_closed().await?;
        assert_eq!(reader.read(10).await?, b"");
        assert!(reader.at_eof());
        Ok(())
    })
}

// CPython: test_streams.py::test_wait_closed_on_close_with_unread_data
#[test]
fn wait_closed_with_unread_data_completes() -> io::Result<()> {
    run(async {
        let (_reader, writer, mut peer) = stream_to_peer(None).await?;
        io::Write::write_all(&mut peer, b"unread")?;
        sleep(0.02).await?;
        writer.close();
        writer.wait_closed().await?;
        Ok(())
    })
}

// CPython: test_streams.py::test_async_writer_api_exception_after_close
#[test]
fn drain_after_close_is_connection_lost() -> io::Result<()> {
    run(async {
        let (_reader, writer, _peer) = stream_to_peer(None).await?;
        writer.write(b"data");
        writer.close();
        let err = writer.drain().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(err.to_string(), "Connection lost");
        Ok(())
    })
}

// CPython: test_streams.py::test_async_writer_api (write, writelines, drain; the peer
// gets it all)
#[test]
fn write_writelines_and_write_eof_reach_the_peer() -> io::Result<()> {
    run(async {
        let (mut reader, writer, mut peer) = stream_to_peer(None).await?;
        assert!(writer.can_write_eof());
        writer.write(b"one ");
        writer.writelines(&[b"two ", b"three"]);
        writer.drain().await?;
        writer.write_eof();
        let got = thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got)?;
            // Half-closed: the reading side still works.
            io::Write::write_all(&mut peer, b"back")?;
            peer.shutdown(Shutdown::Write)?;
            Ok::<_, io::Error>(got)
        });
        assert_eq!(reader.read_all().await?, b"back");
        assert_eq!(got.join().expect("peer thread")?, b"one two three");
        Ok(())
    })
}

// CPython: streams.py::StreamWriter.get_extra_info
#[test]
fn get_extra_info_is_the_transports() -> io::Result<()> {
    run(async {
        let (_reader, writer, peer) = stream_to_peer(None).await?;
        let Some(evloop_net::ExtraInfo::Addr(addr)) = writer.get_extra_info("peername") else {
            panic!("no peername");
        };
        assert_eq!(addr.as_socket(), Some(peer.local_addr()?));
        assert!(writer.get_extra_info("nonsense").is_none());
        Ok(())
    })
}

// CPython: streams.py::StreamWriter.__del__ (3.13: an unclosed writer closes its transport)
#[test]
fn dropping_the_writer_closes_the_connection() -> io::Result<()> {
    run(async {
        let (_reader, writer, mut peer) = stream_to_peer(None).await?;
        writer.write(b"last words");
        let transport = writer.transport().clone();
        drop(writer);
        assert!(transport.is_closing());
        let got = thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).map(|_| got)
        });
        sleep(0.02).await?;
        assert_eq!(got.join().expect("peer thread")?, b"last words");
        Ok(())
    })
}

// CPython: streams.py::StreamWriter.__del__ with a closed loop (3.13 warns "loop is closed"
// and leaves the transport); here closing the loop closes the transport, and the writer
// dropped with its task afterwards does nothing
#[test]
fn closing_the_loop_under_a_waiting_stream_task_closes_the_connection() -> io::Result<()> {
    let lp = evloop_sched::EventLoop::new()?;
    let (reader, writer, mut peer) = lp.run_until_complete(stream_to_peer(None))??;
    let waiting = lp.create_task(async move {
        let mut reader = reader;
        let _writer = writer;
        reader.read(10).await
    })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!waiting.done());
    lp.close()?;
    drop(waiting);
    let mut buf = [0u8; 1];
    assert_eq!(peer.read(&mut buf)?, 0);
    Ok(())
}
