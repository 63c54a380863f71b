//! The callback-loop groups: chained and batched `call_soon`, timers in a running loop, callbacks
//! from another thread, and the wake-up latency of an idle loop.
//!
//! Every subject computes a count that is checked (a wrong count is a wrong result, even in
//! smoke mode); subjects are interleaved within each repeat and the median is recorded.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evloop::{EventLoop, get_running_loop};

use crate::chain;
use crate::common::{check, measure, python_peers, tokio_rt};
use crate::harness::{Ctx, cpu_time, median};

/// Runs every group of this file.
pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    chained(ctx)?;
    batched(ctx)?;
    timers_loop(ctx)?;
    threadsafe(ctx)?;
    wake_latency(ctx)?;
    Ok(())
}

// ----- call_soon_chained_1m: each callback schedules the next ---------------------------------

fn chained(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "call_soon_chained_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[
            ("evloop", evloop_chained),
            ("raw", raw_chained),
            ("tokio", tokio_chained),
        ],
    )?;
    ctx.note(group, "raw: a VecDeque<Box<dyn FnOnce()>> drained in a loop; tokio: one task doing `yield_now().await` n times on a current_thread runtime");
    python_peers(ctx, group, "callbacks.py", "chained", n, &[("total", "ms")]);
    Ok(())
}

fn evloop_chained(n: usize) -> Result<f64, String> {
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let count = chain::schedule(&lp, n).map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", count.get(), n)?;
    Ok(ms)
}

type RawQueue = Rc<RefCell<VecDeque<Box<dyn FnOnce()>>>>;

fn raw_chained(n: usize) -> Result<f64, String> {
    fn step(q: &RawQueue, count: &Rc<Cell<usize>>, n: usize) {
        count.set(count.get() + 1);
        if count.get() < n {
            let (q2, c2) = (q.clone(), count.clone());
            q.borrow_mut()
                .push_back(Box::new(move || step(&q2, &c2, n)));
        }
    }
    let q: RawQueue = Rc::default();
    let count = Rc::new(Cell::new(0));
    let start = Instant::now();
    let (q2, c2) = (q.clone(), count.clone());
    q.borrow_mut()
        .push_back(Box::new(move || step(&q2, &c2, n)));
    loop {
        let next = q.borrow_mut().pop_front();
        match next {
            Some(f) => f(),
            None => break,
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("raw", count.get(), n)?;
    Ok(ms)
}

fn tokio_chained(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(true)?;
    let start = Instant::now();
    let count = rt.block_on(async {
        let mut count = 0;
        for _ in 0..n {
            count += 1;
            tokio::task::yield_now().await;
        }
        count
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", count, n)?;
    Ok(ms)
}

// ----- call_soon_batched_1m: one callback schedules a million ---------------------------------

fn batched(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "call_soon_batched_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[
            ("evloop", evloop_batched),
            ("raw", raw_batched),
            ("tokio", tokio_batched),
        ],
    )?;
    ctx.note(group, "raw: push n boxed closures, then drain; tokio: spawn n tasks from one task on a current_thread runtime, then wait for all");
    python_peers(ctx, group, "callbacks.py", "batched", n, &[("total", "ms")]);
    Ok(())
}

fn evloop_batched(n: usize) -> Result<f64, String> {
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let count = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let (l2, c2) = (lp.clone(), count.clone());
    lp.call_soon(move || {
        for _ in 0..n {
            let c = c2.clone();
            let _ = l2.call_soon(move || c.set(c.get() + 1));
        }
        l2.stop();
    })
    .map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    // stop() ran in the fan-out's batch; the million run in the next run's first iteration.
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop()).map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", count.get(), n)?;
    Ok(ms)
}

fn raw_batched(n: usize) -> Result<f64, String> {
    let count = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let mut q: VecDeque<Box<dyn FnOnce()>> = VecDeque::new();
    for _ in 0..n {
        let c = count.clone();
        q.push_back(Box::new(move || c.set(c.get() + 1)));
    }
    while let Some(f) = q.pop_front() {
        f();
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("raw", count.get(), n)?;
    Ok(ms)
}

fn tokio_batched(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(true)?;
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let c = count.clone();
    rt.block_on(async move {
        for _ in 0..n {
            let c = c.clone();
            tokio::spawn(async move {
                c.fetch_add(1, Ordering::Relaxed);
            });
        }
        while c.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", count.load(Ordering::Relaxed), n)?;
    Ok(ms)
}

// ----- timers_loop_100k: call_later in [0, 100 ms), a seeded half cancelled --------------------

/// splitmix64: a seeded, dependency-free source of the delays and the cancelled half.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Delays uniform in [0, 100 ms), and a shuffled index list whose first half is cancelled.
    fn plan(n: usize) -> (Vec<Duration>, Vec<bool>) {
        let mut rng = Rng(0x5EED);
        let delays = (0..n)
            .map(|_| Duration::from_nanos(rng.next() % 100_000_000))
            .collect();
        let mut idx: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            idx.swap(i, j);
        }
        let mut cancelled = vec![false; n];
        for &i in &idx[..n / 2] {
            cancelled[i] = true;
        }
        (delays, cancelled)
    }
}

fn timers_loop(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(100_000);
    let group = "timers_loop_100k";
    measure(
        ctx,
        group,
        "cpu",
        n,
        &[
            ("evloop", evloop_timers),
            ("raw", raw_timers),
            ("tokio", tokio_timers),
        ],
    )?;
    ctx.note(group, "metric: process CPU time (getrusage) from the first call_later to the last timer fired; raw: BinaryHeap with lazy cancel flags and thread::sleep to the next deadline; tokio: n tasks doing sleep(d).await, half aborted");
    python_peers(ctx, group, "callbacks.py", "timers", n, &[("cpu", "ms")]);
    Ok(())
}

fn evloop_timers(n: usize) -> Result<f64, String> {
    let (delays, cancelled) = Rng::plan(n);
    let live = cancelled.iter().filter(|c| !**c).count();
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let fired = Rc::new(Cell::new(0usize));
    let c0 = cpu_time();
    let mut handles = Vec::with_capacity(n);
    for d in &delays {
        let f = fired.clone();
        let h = lp
            .call_later(*d, move || {
                f.set(f.get() + 1);
                if f.get() == live {
                    if let Ok(lp) = get_running_loop() {
                        lp.stop();
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    for (h, c) in handles.iter().zip(&cancelled) {
        if *c {
            h.cancel();
        }
    }
    drop(handles);
    lp.run_forever().map_err(|e| e.to_string())?;
    let ms = (cpu_time() - c0).as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", fired.get(), live)?;
    Ok(ms)
}

fn raw_timers(n: usize) -> Result<f64, String> {
    let (delays, cancelled) = Rng::plan(n);
    let live = cancelled.iter().filter(|c| !**c).count();
    let fired = Rc::new(Cell::new(0usize));
    let c0 = cpu_time();
    let origin = Instant::now();
    let mut heap = BinaryHeap::with_capacity(n);
    let mut slots: Vec<Option<Box<dyn FnOnce()>>> = Vec::with_capacity(n);
    for (i, d) in delays.iter().enumerate() {
        let f = fired.clone();
        heap.push(Reverse((*d, i)));
        slots.push(Some(Box::new(move || f.set(f.get() + 1))));
    }
    for (slot, c) in slots.iter_mut().zip(&cancelled) {
        if *c {
            *slot = None;
        }
    }
    while let Some(Reverse((due, i))) = heap.peek().copied() {
        let now = origin.elapsed();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        heap.pop();
        if let Some(f) = slots[i].take() {
            f();
        }
    }
    let ms = (cpu_time() - c0).as_secs_f64() * 1e3;
    check("raw", fired.get(), live)?;
    Ok(ms)
}

fn tokio_timers(n: usize) -> Result<f64, String> {
    let (delays, cancelled) = Rng::plan(n);
    let live = cancelled.iter().filter(|c| !**c).count();
    let rt = tokio_rt(true)?;
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let c0 = cpu_time();
    rt.block_on(async move {
        let mut handles = Vec::with_capacity(n);
        for d in delays {
            let f = f.clone();
            handles.push(tokio::spawn(async move {
                tokio::time::sleep(d).await;
                f.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let mut keep = Vec::with_capacity(live);
        for (h, c) in handles.into_iter().zip(&cancelled) {
            if *c {
                h.abort();
            } else {
                keep.push(h);
            }
        }
        for h in keep {
            let _ = h.await;
        }
    });
    let ms = (cpu_time() - c0).as_secs_f64() * 1e3;
    check("tokio", fired.load(Ordering::Relaxed), live)?;
    Ok(ms)
}

// ----- threadsafe_1m: another thread submits a million callbacks ------------------------------

fn threadsafe(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "threadsafe_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[
            ("evloop", evloop_threadsafe),
            ("raw", raw_threadsafe),
            ("tokio", tokio_threadsafe),
        ],
    )?;
    ctx.note(group, "from the first submission to the last callback run; raw: std mpsc channel of boxed closures drained by the loop thread; tokio: Handle::spawn from the other thread onto a current_thread runtime");
    Ok(())
}

fn evloop_threadsafe(n: usize) -> Result<f64, String> {
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let remote = lp.remote();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let start = Instant::now();
    let submitter = std::thread::spawn(move || {
        for _ in 0..n {
            let c = c.clone();
            let submitted = remote.call_soon_threadsafe(move || {
                if c.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    if let Ok(lp) = get_running_loop() {
                        lp.stop();
                    }
                }
            });
            if submitted.is_err() {
                return;
            }
        }
    });
    lp.run_forever().map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    submitter
        .join()
        .map_err(|_| "submitter panicked".to_owned())?;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", count.load(Ordering::Relaxed), n)?;
    Ok(ms)
}

fn raw_threadsafe(n: usize) -> Result<f64, String> {
    let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let start = Instant::now();
    let submitter = std::thread::spawn(move || {
        for _ in 0..n {
            let c = c.clone();
            if tx
                .send(Box::new(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                }))
                .is_err()
            {
                return;
            }
        }
    });
    for f in rx.iter().take(n) {
        f();
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    submitter
        .join()
        .map_err(|_| "submitter panicked".to_owned())?;
    check("raw", count.load(Ordering::Relaxed), n)?;
    Ok(ms)
}

fn tokio_threadsafe(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(true)?;
    let handle = rt.handle().clone();
    let count = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (c, d) = (count.clone(), done.clone());
    let start = Instant::now();
    let submitter = std::thread::spawn(move || {
        for _ in 0..n {
            let (c, d) = (c.clone(), d.clone());
            handle.spawn(async move {
                if c.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    d.notify_one();
                }
            });
        }
    });
    rt.block_on(done.notified());
    let ms = start.elapsed().as_secs_f64() * 1e3;
    submitter
        .join()
        .map_err(|_| "submitter panicked".to_owned())?;
    check("tokio", count.load(Ordering::Relaxed), n)?;
    Ok(ms)
}

// ----- wake_latency: an idle loop woken from another thread -----------------------------------

/// The pause between pings, so that the loop is asleep again when the next one comes.
const PING_GAP: Duration = Duration::from_micros(50);

fn wake_latency(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(10_000).max(10);
    let group = "wake_latency";
    type Pinger = fn(usize) -> Result<Vec<f64>, String>;
    let subjects: [(&str, Pinger); 3] = [
        ("evloop", evloop_pings),
        ("raw", raw_pings),
        ("tokio", tokio_pings),
    ];
    let mut p50 = vec![Vec::new(); subjects.len()];
    let mut p99 = vec![Vec::new(); subjects.len()];
    for _ in 0..ctx.repeats() {
        for (i, (name, f)) in subjects.iter().enumerate() {
            let mut lat = f(n).map_err(|e| format!("{group}/{name}: {e}"))?;
            if lat.len() != n {
                return Err(format!(
                    "{group}/{name}: {} pings answered, expected {n}",
                    lat.len()
                ));
            }
            lat.sort_by(f64::total_cmp);
            p50[i].push(lat[n / 2]);
            p99[i].push(lat[(n * 99 / 100).min(n - 1)]);
        }
    }
    for (i, (name, _)) in subjects.iter().enumerate() {
        ctx.record(group, name, "p50_us", median(&mut p50[i]), "us");
        ctx.record(group, name, "p99_us", median(&mut p99[i]), "us");
    }
    ctx.note(group, "one ping at a time from another thread, 50 µs apart so the loop is asleep; latency = from just before the submission to the callback's first instruction; raw: a bare eventfd written by the pinger and read by a thread blocked in read(2)");
    Ok(())
}

fn evloop_pings(n: usize) -> Result<Vec<f64>, String> {
    let (remote_tx, remote_rx) = mpsc::channel();
    let looper = std::thread::spawn(move || -> Result<(), String> {
        let lp = EventLoop::new().map_err(|e| e.to_string())?;
        remote_tx.send(lp.remote()).map_err(|e| e.to_string())?;
        lp.run_forever().map_err(|e| e.to_string())?;
        lp.close().map_err(|e| e.to_string())
    });
    let remote = remote_rx.recv().map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(PING_GAP);
        let tx = tx.clone();
        let sent = Instant::now();
        remote
            .call_soon_threadsafe(move || {
                let _ = tx.send(sent.elapsed());
            })
            .map_err(|e| e.to_string())?;
        let lat = rx.recv().map_err(|e| e.to_string())?;
        out.push(lat.as_secs_f64() * 1e6);
    }
    remote.stop().map_err(|e| e.to_string())?;
    looper
        .join()
        .map_err(|_| "loop thread panicked".to_owned())??;
    Ok(out)
}

fn tokio_pings(n: usize) -> Result<Vec<f64>, String> {
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (tx, rx) = mpsc::channel();
    let looper = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio_rt(true)?;
        rt.block_on(async move {
            while let Some(sent) = ping_rx.recv().await {
                let _ = tx.send(sent.elapsed());
            }
        });
        Ok(())
    });
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(PING_GAP);
        ping_tx.send(Instant::now()).map_err(|e| e.to_string())?;
        let lat = rx.recv().map_err(|e| e.to_string())?;
        out.push(lat.as_secs_f64() * 1e6);
    }
    drop(ping_tx);
    looper
        .join()
        .map_err(|_| "tokio thread panicked".to_owned())??;
    Ok(out)
}

fn raw_pings(n: usize) -> Result<Vec<f64>, String> {
    // SAFETY: eventfd has no memory-safety preconditions; the fd is checked and owned below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let origin = Instant::now();
    let sent_at = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let s2 = sent_at.clone();
    let looper = std::thread::spawn(move || {
        for _ in 0..n {
            let mut v = 0u64;
            // SAFETY: `v` is a writable 8-byte buffer, as eventfd reads require.
            let r = unsafe { libc::read(efd, (&mut v as *mut u64).cast(), 8) };
            let now = origin.elapsed().as_nanos() as usize;
            if r != 8 {
                break;
            }
            let _ = tx.send(now.saturating_sub(s2.load(Ordering::Acquire)));
        }
    });
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(PING_GAP);
        sent_at.store(origin.elapsed().as_nanos() as usize, Ordering::Release);
        let one = 1u64;
        // SAFETY: `one` is a readable 8-byte buffer, as eventfd writes require.
        let w = unsafe { libc::write(efd, (&one as *const u64).cast(), 8) };
        if w != 8 {
            break;
        }
        match rx.recv() {
            Ok(ns) => out.push(ns as f64 / 1e3),
            Err(_) => break,
        }
    }
    let _ = looper.join();
    // SAFETY: `efd` is open and owned here; the reader thread has exited.
    unsafe { libc::close(efd) };
    Ok(out)
}
