//! Cross-thread scheduling and wake-up: conformance area I.

mod util;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use util::{Log, run_one_iteration};

// CPython: events::…::test_call_soon_threadsafe (I47): a loop blocked with no timers is woken.
#[test]
fn a_blocked_loop_is_woken_by_another_thread() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let remote = lp.remote();
    let start = Instant::now();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        remote.stop()
    });
    lp.run_forever()?;
    let took = start.elapsed();
    worker
        .join()
        .expect("worker thread")
        .map_err(io::Error::from)?;
    assert!(took >= Duration::from_millis(200));
    assert!(took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

// CPython: events::…::test_call_soon_threadsafe_same_thread (I47): one FIFO.
#[test]
fn threadsafe_and_plain_calls_on_the_loop_thread_share_one_fifo() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    lp.call_soon_threadsafe(move || s2.lock().unwrap().push("hello"))?;
    let s3 = seen.clone();
    let l2 = log.clone();
    lp.call_soon(move || {
        s3.lock().unwrap().push("world");
        l2.push(());
    })?;
    run_one_iteration(&lp)?;
    assert_eq!(*seen.lock().unwrap(), ["hello", "world"]);
    Ok(())
}

// Many submissions from another thread all run, in submission order, and none is lost.
#[test]
fn a_storm_of_remote_calls_runs_in_order() -> io::Result<()> {
    const N: usize = 20_000;
    let lp = EventLoop::new()?;
    let remote = lp.remote();
    let seen = Arc::new(Mutex::new(Vec::with_capacity(N)));
    let s2 = seen.clone();
    let worker = std::thread::spawn(move || -> Result<(), evloop_sched::Error> {
        for i in 0..N {
            let s = s2.clone();
            remote.call_soon_threadsafe(move || s.lock().unwrap().push(i))?;
        }
        remote.stop()
    });
    lp.run_forever()?;
    worker
        .join()
        .expect("worker thread")
        .map_err(io::Error::from)?;
    // The stop request ran after all N (it was submitted last); drain any iteration remainder.
    run_one_iteration(&lp)?;
    assert_eq!(*seen.lock().unwrap(), (0..N).collect::<Vec<_>>());
    Ok(())
}

// CPython: events::…::test_close (I47): a closed loop refuses remote calls; a remote handle can be
// cancelled from another thread.
#[test]
fn remote_calls_on_a_closed_loop_fail_and_remote_handles_cancel() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let remote = lp.remote();
    let h = remote.call_soon_threadsafe(|| panic!("cancelled"))?;
    std::thread::spawn(move || h.cancel())
        .join()
        .expect("thread");
    run_one_iteration(&lp)?;
    let pending = remote.call_soon_threadsafe(|| panic!("never runs: the loop closes first"))?;
    lp.close()?;
    assert!(pending.cancelled(), "close() must cancel what it drops");
    assert!(remote.is_closed());
    assert!(
        remote
            .call_soon_threadsafe(|| ())
            .is_err_and(|e| e.is_closed())
    );
    Ok(())
}
