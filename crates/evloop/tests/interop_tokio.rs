//! Futures that need tokio's reactor or timer (`tokio::net`, `tokio::time`, libraries built on
//! them) do not run on evloop: polled on evloop's thread they find no tokio runtime. The
//! supported way is a tokio runtime on its own threads: spawn the tokio-bound future there and
//! await its `JoinHandle` from evloop (tokio wakes the evloop task from its own threads; an
//! evloop waker may be woken from any thread). These tests show both.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, Instant};

use evloop::{EventLoop, LoopTaskExt, TaskError, sleep};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn StdError>>;

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

#[test]
fn a_tokio_bound_future_runs_on_a_tokio_runtime_and_is_awaited_from_evloop() -> TestResult {
    let rt = runtime()?;
    let handle = rt.handle().clone();
    let lp = EventLoop::new()?;
    let started = Instant::now();
    let (reply, slept) = lp.run_until_complete(async move {
        // A tokio TCP echo server and client, and a tokio timer, all on tokio's threads.
        let exchange = handle.spawn(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let server = tokio::spawn(async move {
                let (mut conn, _) = listener.accept().await?;
                let mut buf = [0_u8; 5];
                conn.read_exact(&mut buf).await?;
                conn.write_all(&buf).await?;
                Ok::<_, io::Error>(())
            });
            let mut client = tokio::net::TcpStream::connect(addr).await?;
            client.write_all(b"hello").await?;
            let mut back = [0_u8; 5];
            client.read_exact(&mut back).await?;
            server.await.map_err(io::Error::other)??;
            Ok::<_, io::Error>(back)
        });
        // Made inside the spawned block: `tokio::time::sleep(…)` itself needs tokio's context.
        let timer = handle.spawn(async { tokio::time::sleep(Duration::from_millis(20)).await });
        // Meanwhile evloop's own work goes on.
        sleep(0.001).await?;
        let reply = exchange
            .await
            .map_err(|_| TaskError::invalid_state("the tokio task failed"))?;
        timer
            .await
            .map_err(|_| TaskError::invalid_state("the tokio timer failed"))?;
        Ok::<_, TaskError>((reply, started.elapsed()))
    })??;
    assert_eq!(&reply?, b"hello");
    assert!(slept >= Duration::from_millis(20));
    lp.close()?;
    Ok(())
}

#[test]
fn a_tokio_timer_polled_on_evloop_itself_fails_with_tokios_message() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let outcome = lp.run_until_complete(async move {
        let t = lp2.create_task(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        })?;
        Ok::<_, TaskError>(t.await)
    })??;
    // tokio panics ("there is no reactor running…"); evloop turns the panic into the task's
    // failure, and the loop goes on.
    let err = outcome.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("no reactor running"), "{err}");
    lp.close()?;
    Ok(())
}
