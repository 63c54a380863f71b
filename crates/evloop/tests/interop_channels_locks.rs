//! asyncio's queues and locks are not rebuilt in evloop: `async-channel` and `async-lock` work
//! unchanged on its tasks, since a task's waker may be woken from any thread.
//! CPython counterparts: test_queues.py (producer/consumer with maxsize), test_locks.py (Lock,
//! Semaphore).

use std::cell::RefCell;
use std::error::Error as StdError;
use std::rc::Rc;
use std::thread;

use evloop::{EventLoop, LoopTaskExt, TaskError, gather, sleep};

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: test_queues.py::QueuePutTests::test_blocking_put_wait (a full bounded queue makes
// the producer wait), QueueGetTests::test_get_with_putters.
#[test]
fn a_bounded_async_channel_carries_items_in_order_between_tasks_and_threads() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let got = lp.run_until_complete(async move {
        let (tx, rx) = async_channel::bounded::<u32>(4);
        // A producer task on the loop: it waits whenever four items are queued.
        let tx2 = tx.clone();
        let producer = lp2.create_task(async move {
            for i in 0..100 {
                tx2.send(i).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })?;
        // And a producer thread, blocking on the same channel.
        let thread = thread::spawn(move || {
            for i in 100..150 {
                if tx.send_blocking(i).is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 150 {
            let item = rx.recv().await;
            got.push(item.map_err(|_| TaskError::invalid_state("channel closed early"))?);
        }
        producer
            .await?
            .map_err(|_| TaskError::invalid_state("producer failed"))?;
        thread
            .join()
            .map_err(|_| TaskError::invalid_state("producer thread panicked"))?;
        Ok::<_, TaskError>(got)
    })??;
    let mine: Vec<u32> = got.iter().copied().filter(|i| *i < 100).collect();
    let theirs: Vec<u32> = got.iter().copied().filter(|i| *i >= 100).collect();
    assert_eq!(
        mine,
        (0..100).collect::<Vec<_>>(),
        "the task's items in order"
    );
    assert_eq!(
        theirs,
        (100..150).collect::<Vec<_>>(),
        "the thread's items in order"
    );
    lp.close()?;
    Ok(())
}

// CPython: test_locks.py::LockTests::test_acquire (waiters acquire in FIFO order),
// SemaphoreTests::test_acquire (at most `value` holders).
#[test]
fn async_lock_mutex_and_semaphore_serialize_tasks() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Rc::new(RefCell::new(Vec::new()));
    let lock = Rc::new(async_lock::Mutex::new(()));
    let sem = Rc::new(async_lock::Semaphore::new(2));
    let holders = Rc::new(RefCell::new((0_u32, 0_u32)));
    let lockers = (0..6).map(|i| {
        let (log, lock) = (log.clone(), lock.clone());
        async move {
            let _g = lock.lock().await;
            log.borrow_mut().push(("in", i));
            sleep(0.002).await?;
            log.borrow_mut().push(("out", i));
            Ok::<_, TaskError>(())
        }
    });
    for outcome in lp.run_until_complete(gather(lockers))?? {
        outcome?;
    }
    let permits = (0..6).map(|_| {
        let (sem, holders) = (sem.clone(), holders.clone());
        async move {
            let _permit = sem.acquire().await;
            {
                let mut h = holders.borrow_mut();
                h.0 += 1;
                h.1 = h.1.max(h.0);
            }
            sleep(0.005).await?;
            holders.borrow_mut().0 -= 1;
            Ok::<_, TaskError>(())
        }
    });
    for outcome in lp.run_until_complete(gather(permits))?? {
        outcome?;
    }
    // The mutex never let two tasks in: every "in" is followed by its own "out".
    let log = log.borrow();
    for pair in log.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{log:?}");
        assert_eq!((pair[0].0, pair[1].0), ("in", "out"));
    }
    assert_eq!(log.len(), 12);
    assert_eq!(
        holders.borrow().1,
        2,
        "at most two permits held, and both used"
    );
    lp.close()?;
    Ok(())
}
