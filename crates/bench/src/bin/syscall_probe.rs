//! A tiny program for `strace -c`: runs `n` chained `call_soon` callbacks on an evloop loop (the
//! very workload of the `call_soon_chained_1m` group) and exits, so that syscalls per iteration
//! can be counted as (calls(n) - calls(0)) / n.
//!
//! usage: syscall_probe N

#[path = "../chain.rs"]
mod chain;

use evloop::EventLoop;

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let lp = EventLoop::new()?;
    let ran = if n > 0 {
        let count = chain::schedule(&lp, n)?;
        lp.run_forever()?;
        count.get()
    } else {
        0
    };
    lp.close()?;
    if ran != n {
        eprintln!("ran {ran} callbacks, expected {n}");
        std::process::exit(1);
    }
    Ok(())
}
