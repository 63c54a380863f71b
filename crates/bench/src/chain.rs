//! The chained `call_soon` workload: each callback schedules the next until `n` have run, then
//! stops the loop. One definition, shared by the `call_soon_chained_1m` group and the
//! `syscall_probe` binary (which includes this file by path), so that the syscall count is taken
//! on exactly the code the benchmark times.

use std::cell::Cell;
use std::rc::Rc;

use evloop::EventLoop;

/// Schedules the first of `n` chained callbacks on `lp`; each adds one to the returned count.
/// Run the loop (`run_forever`) to execute them; the last one stops it.
pub(crate) fn schedule(lp: &EventLoop, n: usize) -> std::io::Result<Rc<Cell<usize>>> {
    fn step(lp: &EventLoop, count: &Rc<Cell<usize>>, n: usize) {
        count.set(count.get() + 1);
        if count.get() < n {
            let (l2, c2) = (lp.clone(), count.clone());
            // The loop is open while it runs: call_soon cannot fail here.
            let _ = lp.call_soon(move || step(&l2, &c2, n));
        } else {
            lp.stop();
        }
    }
    let count = Rc::new(Cell::new(0));
    let (l2, c2) = (lp.clone(), count.clone());
    lp.call_soon(move || step(&l2, &c2, n))?;
    Ok(count)
}
