//! `start_server`, `start_unix_server`, `open_connection`, `open_unix_connection`, after
//! CPython's `Lib/test/test_asyncio/test_streams.py`.

mod util;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use evloop_net::{
    ConnectOptions, ServerOptions, StreamReader, StreamWriter, UnixServerOptions, open_connection,
    open_unix_connection, start_server, start_unix_server,
};
use evloop_sched::get_running_loop;
use evloop_task::sleep;
use util::TempPath;
use util::streams::run;

/// The line-echo handler of CPython's test_start_server: reads a line, writes it back.
async fn echo_line(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    let line = reader.readline().await?;
    writer.write(&line);
    writer.drain().await?;
    writer.close();
    writer.wait_closed().await
}

// CPython: test_streams.py::test_start_server, test_open_connection
#[test]
fn start_server_runs_the_callback_per_connection() -> io::Result<()> {
    run(async {
        let server = start_server(
            echo_line,
            ServerOptions::new().host("127.0.0.1").port(0),
            None,
        )
        .await?;
        let port = server.sockets()[0]
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not inet"))?
            .port();
        for msg in [&b"hello world!\n"[..], b"second\n"] {
            let (mut reader, writer) =
                open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None).await?;
            writer.write(msg);
            assert_eq!(reader.readline().await?, msg);
            assert_eq!(reader.read(10).await?, b"");
            writer.close();
            writer.wait_closed().await?;
        }
        server.close();
        server.wait_closed().await;
        Ok(())
    })
}

// CPython: test_streams.py::test_start_unix_server, test_open_unix_connection
#[test]
fn unix_streams_echo_a_line() -> io::Result<()> {
    let path = TempPath::new("streams");
    let p2 = path.0.clone();
    run(async move {
        let server = start_unix_server(echo_line, &p2, UnixServerOptions::new(), None).await?;
        let (mut reader, writer) = open_unix_connection(&p2, None).await?;
        writer.write(b"over unix\n");
        assert_eq!(reader.readline().await?, b"over unix\n");
        writer.close();
        writer.wait_closed().await?;
        server.close();
        server.wait_closed().await;
        Ok(())
    })
}

// CPython: test_streams.py::test_open_connection_error (a refused connect is the OS error)
#[test]
fn open_connection_to_nobody_is_refused() -> io::Result<()> {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let err = open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = open_unix_connection("/nonexistent/evloop.sock", None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        Ok(())
    })
}

// CPython: streams.py::StreamReaderProtocol.connection_made (3.12+: a client callback that
// fails is reported and its connection closed)
#[test]
fn a_failing_client_callback_is_reported_and_its_connection_closed() -> io::Result<()> {
    run(async {
        let lp = get_running_loop()?;
        let reports = Rc::new(RefCell::new(Vec::new()));
        let r2 = reports.clone();
        lp.set_exception_handler(Some(Rc::new(
            move |_lp: &evloop_sched::EventLoop, ctx: &evloop_sched::Context| {
                let exc = ctx.exception().map(|e| e.to_string()).unwrap_or_default();
                r2.borrow_mut().push((ctx.message().to_string(), exc));
            },
        )));
        let server = start_server(
            |_reader: StreamReader, writer: StreamWriter| async move {
                // Held past the error, so that only the failure closes the connection.
                let _writer = writer;
                Err(io::Error::other("handler failed"))
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
        let (mut reader, _writer) =
            open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None).await?;
        assert_eq!(reader.read(10).await?, b"");
        sleep(0.01).await?;
        assert_eq!(
            *reports.borrow(),
            [(
                "Unhandled exception in client_connected_cb".to_string(),
                "handler failed".to_string()
            )]
        );
        server.close();
        Ok(())
    })
}

// CPython: test_streams.py::test_open_connection (limit given to the reader)
#[test]
fn the_limit_reaches_the_server_side_reader() -> io::Result<()> {
    run(async {
        let seen = Rc::new(RefCell::new(None));
        let s2 = seen.clone();
        let server = start_server(
            move |reader: StreamReader, _writer: StreamWriter| {
                *s2.borrow_mut() = Some(reader.limit());
                async { Ok(()) }
            },
            ServerOptions::new().host("127.0.0.1").port(0),
            Some(1234),
        )
        .await?;
        let port = server.sockets()[0]
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not inet"))?
            .port();
        let (mut reader, _writer) =
            open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None).await?;
        assert_eq!(reader.limit(), evloop_net::DEFAULT_LIMIT);
        // The callback returned at once and dropped its writer: the server closed.
        assert_eq!(reader.read(10).await?, b"");
        assert_eq!(*seen.borrow(), Some(1234));
        server.close();
        Ok(())
    })
}
