//! Hello World with `call_soon` (asyncio reference 18.5.1.18.1): the callback prints
//! "Hello World" and stops the loop.

use evloop::EventLoop;

fn main() -> std::io::Result<()> {
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    // Schedule a call to the hello-world callback.
    lp.call_soon(move || {
        println!("Hello World");
        l2.stop();
    })?;
    // Blocking call interrupted by stop().
    lp.run_forever()?;
    lp.close()?;
    Ok(())
}
