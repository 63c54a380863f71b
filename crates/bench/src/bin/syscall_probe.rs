//! A tiny program for `strace -c`: runs `n` chained `call_soon` callbacks on an evloop loop and
//! exits, so that syscalls per iteration can be counted as (calls(n) - calls(0)) / n.
//!
//! usage: syscall_probe N

use std::cell::Cell;
use std::rc::Rc;

use evloop::EventLoop;

fn step(lp: &EventLoop, count: &Rc<Cell<usize>>, n: usize) {
    count.set(count.get() + 1);
    if count.get() < n {
        let (l2, c2) = (lp.clone(), count.clone());
        let _ = lp.call_soon(move || step(&l2, &c2, n));
    } else {
        lp.stop();
    }
}

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let lp = EventLoop::new()?;
    let count = Rc::new(Cell::new(0));
    if n > 0 {
        let (l2, c2) = (lp.clone(), count.clone());
        lp.call_soon(move || step(&l2, &c2, n))?;
        lp.run_forever()?;
    }
    lp.close()?;
    if count.get() != n {
        eprintln!("ran {} callbacks, expected {n}", count.get());
        std::process::exit(1);
    }
    Ok(())
}
