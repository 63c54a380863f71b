//! Set signal handlers for SIGINT and SIGTERM (asyncio reference 18.5.1.18.4): the loop runs
//! until one of them arrives, then the handler prints which and stops it. Unix only.

use evloop::{EventLoop, signal};

fn main() -> std::io::Result<()> {
    let lp = EventLoop::new()?;
    for signum in [signal::SIGINT, signal::SIGTERM] {
        let name = signal::name(signum).unwrap_or("a signal");
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || {
            println!("got signal {name}: exit");
            l2.stop();
        })?;
    }
    println!("Event loop running forever, press Ctrl+C to interrupt.");
    println!(
        "pid {}: send SIGINT or SIGTERM to exit.",
        std::process::id()
    );
    let outcome = lp.run_forever();
    lp.close()?;
    Ok(outcome?)
}
