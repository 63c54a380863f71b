//! The stream reader's methods against a real connection, after CPython's
//! `Lib/test/test_asyncio/test_streams.py` (which feeds a reader by hand; here a blocking peer
//! socket writes and the transport feeds it).

mod util;

use std::io::{self, Write};
use std::net::Shutdown;

use util::streams::{feed_later, overrun_of, partial_of, reset, run, stream_to_peer};

// CPython: test_streams.py::test_read_zero, test_read
#[test]
fn read_returns_what_is_buffered_up_to_n() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(None).await?;
        assert_eq!(reader.read(0).await?, b"");
        peer.write_all(b"line1\nline2\n")?;
        let mut got = reader.read(5).await?;
        assert_eq!(got, b"line1");
        // What is left of the chunk, and no more than asked.
        while got.len() < 12 {
            got.extend(reader.read(100).await?);
        }
        assert_eq!(got, b"line1\nline2\n");
        Ok(())
    })
}

// CPython: test_streams.py::test_read_eof, test_at_eof
#[test]
fn read_at_eof_returns_empty_and_at_eof_turns_true() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(None).await?;
        assert!(!reader.at_eof());
        peer.write_all(b"some data\n")?;
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(reader.readline().await?, b"some data\n");
        assert_eq!(reader.read(1024).await?, b"");
        assert!(reader.at_eof());
        Ok(())
    })
}

// CPython: test_streams.py::test_read_until_eof
#[test]
fn read_all_reads_every_chunk_to_eof() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        feed_later(&peer, &[b"chunk1\n", b"chunk2"], true)?;
        assert_eq!(reader.read_all().await?, b"chunk1\nchunk2");
        assert!(reader.at_eof());
        Ok(())
    })
}

// CPython: test_streams.py::test_read_exception, test_readline_exception,
// test_readexactly_exception
#[test]
fn a_reset_connection_fails_every_read() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        reset(peer)?;
        let err = reader.read(10).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(
            reader.exception().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset)
        );
        let err = reader.readline().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let err = reader.readexactly(2).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        Ok(())
    })
}

// CPython: test_streams.py::test_invalid_limit
#[test]
fn a_zero_limit_is_invalid_input() -> io::Result<()> {
    run(async {
        let err = stream_to_peer(Some(0)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "limit cannot be <= 0");
        Ok(())
    })
}

// CPython: test_streams.py::test_readline, test_readline_read_byte_count
#[test]
fn readline_joins_chunks_and_leaves_the_rest() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        feed_later(&peer, &[b"chunk1 ", b"chunk2 ", b"chunk3 \nline2\n"], false)?;
        assert_eq!(reader.readline().await?, b"chunk1 chunk2 chunk3 \n");
        assert_eq!(reader.read(7).await?, b"line2\n");
        Ok(())
    })
}

// CPython: test_streams.py::test_readline_limit_with_existing_data
#[test]
fn readline_over_the_limit_drops_the_line_or_the_buffer() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(Some(3)).await?;
        peer.write_all(b"line1\nline2\n")?;
        let err = reader.readline().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // The over-long line went, newline included; the next one is intact.
        assert_eq!(reader.readexactly(6).await?, b"line2\n");

        // No newline buffered: everything goes.
        peer.write_all(b"line1li")?;
        let err = reader.readline().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        peer.write_all(b"x\n")?;
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(reader.read_all().await?, b"x\n");
        Ok(())
    })
}

// CPython: test_streams.py::test_readline_limit
#[test]
fn readline_limit_counts_the_line_without_its_newline() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(Some(7)).await?;
        peer.write_all(b"1234567\n")?;
        assert_eq!(reader.readline().await?, b"1234567\n");

        peer.write_all(b"12345678\n")?;
        let err = reader.readline().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "Separator is found, but chunk is longer than limit"
        );

        peer.write_all(b"12345678")?;
        let err = reader.readline().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Separator is not found, and chunk exceed the limit"
        );
        // Both left the buffer empty.
        peer.write_all(b"ok\n")?;
        assert_eq!(reader.readline().await?, b"ok\n");
        Ok(())
    })
}

// CPython: test_streams.py::test_readline_eof, test_readline_empty_eof
#[test]
fn readline_at_eof_returns_the_rest_then_empty() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(None).await?;
        peer.write_all(b"some data")?;
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(reader.readline().await?, b"some data");
        assert_eq!(reader.readline().await?, b"");
        Ok(())
    })
}

// CPython: test_streams.py::test_readuntil_separator
#[test]
fn readuntil_refuses_an_empty_separator() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, _peer) = stream_to_peer(None).await?;
        let err = reader.readuntil(b"").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "separator should be at least one-byte string"
        );
        Ok(())
    })
}

// CPython: test_streams.py::test_readuntil_multi_chunks
#[test]
fn readuntil_returns_through_the_separator() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(None).await?;
        peer.write_all(b"lineAAA")?;
        assert_eq!(reader.readuntil(b"AAA").await?, b"lineAAA");
        peer.write_all(b"lineAAAxxx")?;
        assert_eq!(reader.readuntil(b"AAA").await?, b"lineAAA");
        assert_eq!(reader.readexactly(3).await?, b"xxx");
        Ok(())
    })
}

// CPython: test_streams.py::test_readuntil_multi_chunks_1
#[test]
fn readuntil_finds_a_separator_split_across_chunks() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        feed_later(&peer, &[b"QWEaa", b"XYaa", b"a"], false)?;
        assert_eq!(reader.readuntil(b"aaa").await?, b"QWEaaXYaaa");
        feed_later(&peer, &[b"QWEaa", b"XYa", b"aa"], false)?;
        assert_eq!(reader.readuntil(b"aaa").await?, b"QWEaaXYaaa");
        feed_later(&peer, &[b"aaa"], false)?;
        assert_eq!(reader.readuntil(b"aaa").await?, b"aaa");
        feed_later(&peer, &[b"Xaaa"], false)?;
        assert_eq!(reader.readuntil(b"aaa").await?, b"Xaaa");
        feed_later(&peer, &[b"XXX", b"a", b"a", b"a"], false)?;
        assert_eq!(reader.readuntil(b"aaa").await?, b"XXXaaa");
        Ok(())
    })
}

// CPython: test_streams.py::test_readuntil_eof
#[test]
fn readuntil_at_eof_is_an_incomplete_read_with_everything() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(None).await?;
        peer.write_all(b"some dataAA")?;
        peer.shutdown(Shutdown::Write)?;
        let err = reader.readuntil(b"AAA").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(partial_of(&err), Some((b"some dataAA".to_vec(), None)));
        assert_eq!(
            err.to_string(),
            "11 bytes read on a total of None expected bytes"
        );
        // The buffer was emptied.
        assert_eq!(reader.read(100).await?, b"");
        Ok(())
    })
}

// CPython: test_streams.py::test_readuntil_limit_found_sep
#[test]
fn readuntil_over_the_limit_leaves_the_buffer_as_it_was() -> io::Result<()> {
    run(async {
        // Limit 6, not CPython's 3: its reader is fed by hand, ours by a transport, which
        // stops reading above 2 × limit, and the "A" below must get in.
        let (mut reader, _writer, mut peer) = stream_to_peer(Some(6)).await?;
        peer.write_all(b"some dataAA")?;
        let err = reader.readuntil(b"AAA").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "Separator is not found, and chunk exceed the limit"
        );
        assert_eq!(overrun_of(&err), Some(9));

        peer.write_all(b"A")?;
        // Let the "A" arrive: a readuntil that fails at once never lets the loop read.
        evloop_task::sleep(0.05).await?;
        let err = reader.readuntil(b"AAA").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Separator is found, but chunk is longer than limit"
        );
        assert_eq!(overrun_of(&err), Some(9));
        // Nothing was consumed by either error.
        assert_eq!(reader.readexactly(12).await?, b"some dataAAA");
        Ok(())
    })
}

// CPython: test_streams.py::test_readexactly_zero_or_less, test_readexactly
#[test]
fn readexactly_waits_for_all_n_bytes() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        assert_eq!(reader.readexactly(0).await?, b"");
        let data: &[u8] = b"chunk1\nchunk2\nchunk3\n";
        feed_later(&peer, &[data, data, data], false)?;
        let got = reader.readexactly(2 * data.len()).await?;
        assert_eq!(got, [data, data].concat());
        assert_eq!(reader.readexactly(data.len()).await?, data);
        Ok(())
    })
}

// CPython: test_streams.py::test_readexactly_limit
#[test]
fn readexactly_is_not_bound_by_the_limit() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(Some(3)).await?;
        let data: &[u8] = b"chunk";
        feed_later(&peer, &[data, data, data], false)?;
        assert_eq!(reader.readexactly(15).await?, b"chunkchunkchunk");
        Ok(())
    })
}

// CPython: test_streams.py::test_readexactly_eof
#[test]
fn readexactly_at_eof_carries_the_partial_bytes() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, peer) = stream_to_peer(None).await?;
        let data: &[u8] = b"chunk1\nchunk2\nchunk3\n";
        feed_later(&peer, &[data], true)?;
        let err = reader.readexactly(2 * data.len()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(partial_of(&err), Some((data.to_vec(), Some(42))));
        assert_eq!(
            err.to_string(),
            "21 bytes read on a total of 42 expected bytes"
        );
        // The partial bytes left the buffer, and the error gives them back owned.
        let owned = err
            .into_inner()
            .and_then(|e| e.downcast::<evloop_net::IncompleteReadError>().ok())
            .map(|e| e.into_partial());
        assert_eq!(owned.as_deref(), Some(data));
        assert_eq!(reader.read(10).await?, b"");
        Ok(())
    })
}

// CPython: streams.py::StreamReader.feed_data (pause above 2 × limit) and
// _maybe_resume_transport (resume at the limit or below)
#[test]
fn reading_pauses_above_twice_the_limit_and_resumes_at_the_limit() -> io::Result<()> {
    run(async {
        let (mut reader, writer, mut peer) = stream_to_peer(Some(100)).await?;
        peer.write_all(&[b'x'; 150])?;
        assert_eq!(reader.readexactly(150).await?.len(), 150);
        assert!(writer.transport().is_reading());
        peer.write_all(&[b'y'; 1000])?;
        // Give the loop time to read what it can (it stops above 200 buffered).
        evloop_task::sleep(0.05).await?;
        assert!(!writer.transport().is_reading());
        let first = reader.read(1000).await?;
        assert!(first.len() > 200, "read {}", first.len());
        assert!(writer.transport().is_reading());
        let rest = reader.readexactly(1000 - first.len()).await?;
        assert!(rest.iter().chain(&first).all(|&b| b == b'y'));
        Ok(())
    })
}

// CPython: streams.py::StreamReader.readuntil (3.13: a tuple of separators, the shortest
// result wins; the longest separator bounds the search, the matched one the limit)
#[test]
fn readuntil_any_returns_the_shortest_match() -> io::Result<()> {
    run(async {
        let (mut reader, _writer, mut peer) = stream_to_peer(Some(8)).await?;
        let err = reader.readuntil_any(&[]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "separator should contain at least one element"
        );
        let err = reader.readuntil_any(&[b"\n", b""]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "separator should be at least one-byte string"
        );

        peer.write_all(b"line1\r\nline2\nxxAAyyB")?;
        assert_eq!(reader.readuntil_any(&[b"\r\n", b"\n"]).await?, b"line1\r\n");
        assert_eq!(reader.readuntil_any(&[b"\r\n", b"\n"]).await?, b"line2\n");
        assert_eq!(reader.readuntil_any(&[b"B", b"AA"]).await?, b"xxAA");
        assert_eq!(reader.readuntil_any(&[b"B", b"AA"]).await?, b"yyB");

        // No separator in 11 bytes: the longest (4) leaves offset 8, not over the limit of 8;
        // in 12 it leaves 9, over it. Whether the read sees the 11 first (and waits) or all
        // 12 at once, it ends with offset 9.
        peer.write_all(b"some dataAA")?;
        peer.write_all(b"Z")?;
        let err = reader.readuntil_any(&[b"AAA", b"BBBB"]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Separator is not found, and chunk exceed the limit"
        );
        assert_eq!(overrun_of(&err), Some(9));
        Ok(())
    })
}
