//! A timer wheel on its own: a few named timers, one of them cancelled, and
//! the order in which the others expire as time moves on.
//!
//! Run it with `cargo run --release -p evloop-timer --example wheel`.

use evloop_timer::TimerWheel;

const MS: u64 = 1_000_000;

/// `nanos` as seconds, for printing.
fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn main() {
    let mut wheel = TimerWheel::new();

    let timers = [
        (250 * MS, "flush the write buffer"),
        (1_000 * MS, "send a keep-alive"),
        (30_000 * MS, "close the idle connection"),
        (1_000 * MS, "log the request rate"),
        (5 * MS, "retry the DNS query"),
        (86_400_000 * MS, "rotate the log file"),
    ];
    let mut keys = Vec::new();
    for (deadline, name) in timers {
        println!("insert  at {:>9.3} s  {name}", secs(deadline));
        keys.push(wheel.insert(deadline, name));
    }

    // The connection got traffic: its idle timeout is cancelled.
    if let Some(name) = wheel.cancel(keys[2]) {
        println!("cancel               {name}");
    }
    if let Some(next) = wheel.next_deadline() {
        println!(
            "next deadline: {:.3} s (what a loop would sleep until)",
            secs(next)
        );
    }

    // The loop wakes now and then and takes what is due, in order. Timers
    // with equal deadlines come out in the order they were inserted.
    for now in [MS, 10 * MS, 1_000 * MS, 60_000 * MS, 86_400_000 * MS] {
        println!("-- now {:.3} s", secs(now));
        for (deadline, name) in wheel.drain_expired(now) {
            println!("expire  at {:>9.3} s  {name}", secs(deadline));
        }
    }
    println!("{} timer(s) left", wheel.len());
}
