//! The futures-and-tasks groups: spawning a million trivial tasks, a million `sleep(0)`s in one
//! task, a million future round trips, and ten thousand executor round trips.
//!
//! Every subject computes a count that is checked (a wrong count is a wrong result, even in
//! smoke mode); subjects are interleaved within each repeat and the median is recorded.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use evloop::EventLoop;
use evloop::prelude::*;

use crate::common::{check, measure, python_peers, tokio_rt};
use crate::harness::{Ctx, median};

/// Runs every group of this file.
pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    tasks_1m(ctx)?;
    sleep0_chain(ctx)?;
    future_roundtrip(ctx)?;
    executor_roundtrip(ctx)?;
    Ok(())
}

fn new_loop() -> Result<EventLoop, String> {
    EventLoop::new().map_err(|e| e.to_string())
}

// ----- tasks_1m: spawn and complete a million trivial tasks -----------------------------------

fn tasks_1m(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "tasks_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[
            ("evloop", evloop_tasks),
            ("tokio", tokio_tasks),
            ("async_executor", async_executor_tasks),
        ],
    )?;
    ctx.note(group, "one task spawns n trivial tasks that each bump a counter, then awaits them all in order; tokio: spawn_local on a LocalSet of a current_thread runtime; async_executor: smol's LocalExecutor driven by try_tick");
    python_peers(ctx, group, "tasks.py", "tasks", n, &[("total", "ms")]);
    Ok(())
}

fn evloop_tasks(n: usize) -> Result<f64, String> {
    let lp = new_loop()?;
    let count = Rc::new(Cell::new(0));
    let (lp2, c2) = (lp.clone(), count.clone());
    let start = Instant::now();
    lp.run_until_complete(async move {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let c = c2.clone();
            tasks.push(lp2.create_task(async move { c.set(c.get() + 1) })?);
        }
        for t in tasks {
            t.await?;
        }
        Ok::<_, evloop::TaskError>(())
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", count.get(), n)?;
    Ok(ms)
}

fn tokio_tasks(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(false)?;
    let local = tokio::task::LocalSet::new();
    let count = Rc::new(Cell::new(0));
    let c2 = count.clone();
    let start = Instant::now();
    local.block_on(&rt, async move {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let c = c2.clone();
            tasks.push(tokio::task::spawn_local(async move { c.set(c.get() + 1) }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", count.get(), n)?;
    Ok(ms)
}

fn async_executor_tasks(n: usize) -> Result<f64, String> {
    let ex = Rc::new(async_executor::LocalExecutor::new());
    let count = Rc::new(Cell::new(0));
    let finished = Rc::new(Cell::new(false));
    let (ex2, c2, f2) = (ex.clone(), count.clone(), finished.clone());
    let start = Instant::now();
    ex.spawn(async move {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let c = c2.clone();
            tasks.push(ex2.spawn(async move { c.set(c.get() + 1) }));
        }
        for t in tasks {
            t.await;
        }
        f2.set(true);
    })
    .detach();
    while ex.try_tick() {}
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !finished.get() {
        return Err("async_executor: the spawning task did not finish".to_owned());
    }
    check("async_executor", count.get(), n)?;
    Ok(ms)
}

// ----- sleep0_chain_1m: one task doing a million sleep(0) -------------------------------------

fn sleep0_chain(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "sleep0_chain_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[("evloop", evloop_sleep0), ("tokio", tokio_yield)],
    )?;
    ctx.note(group, "one task awaiting sleep(0) n times, each a full loop iteration; tokio: yield_now on a current_thread runtime");
    python_peers(ctx, group, "tasks.py", "sleep0", n, &[("total", "ms")]);
    Ok(())
}

fn evloop_sleep0(n: usize) -> Result<f64, String> {
    let lp = new_loop()?;
    let start = Instant::now();
    let count = lp
        .run_until_complete(async move {
            let mut count = 0;
            for _ in 0..n {
                evloop::sleep(0.0).await?;
                count += 1;
            }
            Ok::<_, evloop::TaskError>(count)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", count, n)?;
    Ok(ms)
}

fn tokio_yield(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(false)?;
    let start = Instant::now();
    let count = rt.block_on(async move {
        let mut count = 0;
        for _ in 0..n {
            tokio::task::yield_now().await;
            count += 1;
        }
        count
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", count, n)?;
    Ok(ms)
}

// ----- future_roundtrip_1m: create a future, set it from a callback, await it -----------------

fn future_roundtrip(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let group = "future_roundtrip_1m";
    measure(
        ctx,
        group,
        "total",
        n,
        &[("evloop", evloop_roundtrip), ("tokio", tokio_roundtrip)],
    )?;
    ctx.note(group, "one task: create_future, call_soon(set_result), await, n times; tokio: a oneshot channel whose sender a spawn_local'd task fires");
    python_peers(
        ctx,
        group,
        "tasks.py",
        "future_roundtrip",
        n,
        &[("total", "ms")],
    );
    Ok(())
}

fn evloop_roundtrip(n: usize) -> Result<f64, String> {
    let lp = new_loop()?;
    let lp2 = lp.clone();
    let start = Instant::now();
    let sum = lp
        .run_until_complete(async move {
            let mut sum = 0usize;
            for i in 0..n {
                let fut = lp2.create_future::<usize>();
                let f2 = fut.clone();
                lp2.call_soon(move || {
                    let _ = f2.set_result(i);
                })?;
                sum += fut.await? - i + 1;
            }
            Ok::<_, evloop::TaskError>(sum)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop", sum, n)?;
    Ok(ms)
}

fn tokio_roundtrip(n: usize) -> Result<f64, String> {
    let rt = tokio_rt(false)?;
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    let sum = local.block_on(&rt, async move {
        let mut sum = 0usize;
        for i in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
            tokio::task::spawn_local(async move {
                let _ = tx.send(i);
            });
            if let Ok(v) = rx.await {
                sum += v - i + 1;
            }
        }
        sum
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", sum, n)?;
    Ok(ms)
}

// ----- executor_roundtrip_10k: run_in_executor of a no-op, one at a time ----------------------

fn executor_roundtrip(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(10_000).max(10);
    let group = "executor_roundtrip_10k";
    type Runner = fn(usize) -> Result<Vec<f64>, String>;
    let subjects: [(&str, Runner); 2] = [("evloop", evloop_executor), ("tokio", tokio_blocking)];
    let mut totals = vec![Vec::new(); subjects.len()];
    let mut p50 = vec![Vec::new(); subjects.len()];
    for _ in 0..ctx.repeats() {
        for (i, (name, f)) in subjects.iter().enumerate() {
            let mut lat = f(n).map_err(|e| format!("{group}/{name}: {e}"))?;
            check(name, lat.len(), n).map_err(|e| format!("{group}/{e}"))?;
            totals[i].push(lat.iter().sum::<f64>() / 1e3);
            lat.sort_by(f64::total_cmp);
            p50[i].push(lat[n / 2]);
        }
    }
    for (i, (name, _)) in subjects.iter().enumerate() {
        ctx.record(group, name, "total", median(&mut totals[i]), "ms");
        ctx.record(group, name, "p50_us", median(&mut p50[i]), "us");
    }
    ctx.note(group, "one task awaits run_in_executor(None, no-op) n times in a row; latency = from the submission to the await's return; tokio: spawn_blocking on a current_thread runtime");
    python_peers(
        ctx,
        group,
        "tasks.py",
        "executor",
        n,
        &[("total", "ms"), ("p50_us", "us")],
    );
    Ok(())
}

fn evloop_executor(n: usize) -> Result<Vec<f64>, String> {
    let lp = new_loop()?;
    let lp2 = lp.clone();
    let lat = lp
        .run_until_complete(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let sent = Instant::now();
                lp2.run_in_executor(None, || ())?.await?;
                lat.push(sent.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, evloop::TaskError>(lat)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    Ok(lat)
}

fn tokio_blocking(n: usize) -> Result<Vec<f64>, String> {
    let rt = tokio_rt(false)?;
    let lat = rt.block_on(async move {
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = Instant::now();
            if tokio::task::spawn_blocking(|| ()).await.is_ok() {
                lat.push(sent.elapsed().as_secs_f64() * 1e6);
            }
        }
        lat
    });
    Ok(lat)
}
