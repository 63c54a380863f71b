//! Tasks: scheduling, iteration hops, current_task, names, factories (conformance area F).

mod util;

use std::cell::{Cell, RefCell};
use std::error::Error as StdError;
use std::rc::Rc;

use evloop_sched::EventLoop;
use evloop_task::{
    LoopTaskExt, NewTask, TaskFactory, all_tasks, current_task, eager_task_factory, sleep,
};
use util::{Log, run_one_iteration};

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: tasks::…::test_task_basics (F28 first half).
#[test]
fn create_task_schedules_the_first_step_behind_queued_callbacks() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let l1 = log.clone();
    lp.call_soon(move || l1.push("callback before"))?;
    let l2 = log.clone();
    let t = lp.create_task(async move { l2.push("task") })?;
    let l3 = log.clone();
    lp.call_soon(move || l3.push("callback after"))?;
    assert!(
        log.snapshot().is_empty(),
        "the first step never runs inline"
    );
    assert!(!t.done());
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["callback before", "task", "callback after"]);
    assert!(t.done());
    Ok(())
}

// CPython: tasks::SleepTests::test_sleep_zero (F28): sleep(0) yields exactly one iteration.
#[test]
fn sleep_zero_yields_exactly_one_iteration() -> TestResult {
    let lp = EventLoop::new()?;
    let count = Rc::new(Cell::new(0));
    let (lp2, c2) = (lp.clone(), count.clone());
    let value = lp.run_until_complete(async move {
        let c3 = c2.clone();
        lp2.call_soon(move || c3.set(c3.get() + 1))?;
        assert_eq!(c2.get(), 0);
        sleep(0.0).await?;
        Ok::<_, evloop_task::Error>(c2.get())
    })??;
    assert_eq!(value, 1);

    // Exactly one: two tasks doing sleep(0) in a loop interleave step by step.
    let log = Log::new();
    for name in ["a", "b"] {
        let log = log.clone();
        let _task = lp.create_task(async move {
            for i in 0..3 {
                log.push(format!("{name}{i}"));
                let _ = sleep(0.0).await;
            }
        })?;
    }
    for _ in 0..3 {
        run_one_iteration(&lp)?;
    }
    assert_eq!(log.take(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    Ok(())
}

// F28: a task awaiting a future set in iteration N resumes in iteration N + 1.
#[test]
fn a_task_resumes_the_iteration_after_its_future_is_set() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let fut = lp.create_future::<u32>();
    let (f2, l2) = (fut.clone(), log.clone());
    let _task = lp.create_task(async move {
        let v = f2.await;
        l2.push(format!("resumed {v:?}"));
    })?;
    run_one_iteration(&lp)?; // the task's first step: it now waits
    let (f3, l3) = (fut.clone(), log.clone());
    lp.call_soon(move || {
        let _ = f3.set_result(5);
        l3.push("set".to_owned());
    })?;
    run_one_iteration(&lp)?; // iteration N: set
    assert_eq!(log.take(), ["set"]);
    run_one_iteration(&lp)?; // iteration N + 1: resumed
    assert_eq!(log.take(), ["resumed Ok(5)"]);
    Ok(())
}

// CPython: tasks::…::test_current_task, test_current_task_with_interleaving_tasks (F36).
#[test]
fn current_task_is_the_running_task_and_none_outside() -> TestResult {
    let lp = EventLoop::new()?;
    assert!(current_task().is_none());
    let fut1 = lp.create_future::<()>();
    let fut2 = lp.create_future::<()>();
    let log = Log::new();
    let mut tasks = Vec::new();
    for (name, wait, set) in [
        ("one", fut1.clone(), fut2.clone()),
        ("two", fut2.clone(), fut1.clone()),
    ] {
        let log = log.clone();
        let t = lp.create_task(async move {
            let me = current_task().map(|t| t.name());
            log.push((name, me.clone()));
            if name == "one" {
                let _ = wait.await;
            } else {
                let _ = set.set_result(());
                let _ = wait.await;
            }
            log.push((name, current_task().map(|t| t.name())));
            if name == "two" {
                // never reached before "one" sets fut2 below
            }
            let _ = set.set_result(());
        })?;
        t.set_name(name);
        tasks.push(t);
    }
    let both = async move {
        for t in tasks {
            let _ = t.await;
        }
    };
    lp.run_until_complete(both)?;
    let seen = log.take();
    assert_eq!(seen.len(), 4);
    for (name, me) in seen {
        assert_eq!(me.as_deref(), Some(name));
    }
    assert!(current_task().is_none());
    Ok(())
}

// CPython: base::…::test_set_task_factory (F38): default names are Task-N from a process-wide
// counter.
#[test]
fn default_names_count_up_and_set_name_renames() -> TestResult {
    let lp = EventLoop::new()?;
    let a = lp.create_task(async {})?;
    let b = lp.create_task(async {})?;
    let num = |n: String| n.strip_prefix("Task-").and_then(|s| s.parse::<u64>().ok());
    let (na, nb) = (num(a.name()), num(b.name()));
    assert!(na.is_some() && nb.is_some());
    assert!(nb > na);
    b.set_name("renamed");
    assert_eq!(b.name(), "renamed");
    lp.run_until_complete(async {})?;
    Ok(())
}

// CPython: base::…::test_set_task_factory, test_create_named_task_with_custom_factory (F38).
#[test]
fn a_task_factory_is_called_and_none_restores_the_default() -> TestResult {
    let lp = EventLoop::new()?;
    assert!(lp.get_task_factory().is_none());
    let calls = Rc::new(Cell::new(0));
    let c2 = calls.clone();
    let factory: TaskFactory = Rc::new(move |_lp: &EventLoop, t: NewTask| {
        c2.set(c2.get() + 1);
        t.task().set_name(format!("made-{}", c2.get()));
        t.start()
    });
    lp.set_task_factory(Some(factory.clone()));
    assert!(
        lp.get_task_factory()
            .is_some_and(|f| Rc::ptr_eq(&f, &factory))
    );
    let t = lp.create_task(async { 1 })?;
    assert_eq!(t.name(), "made-1");
    assert_eq!(lp.run_until_complete(t)??, 1);
    assert_eq!(calls.get(), 2); // the task, and the one run_until_complete wrapped it in
    lp.set_task_factory(None);
    assert!(lp.get_task_factory().is_none());
    lp.run_until_complete(async {})?;
    assert_eq!(calls.get(), 2);
    Ok(())
}

// Ours: a factory that drops the task without starting it: the body never runs, the task ends
// cancelled, and nothing is reported.
#[test]
fn a_task_the_factory_does_not_start_ends_cancelled() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = util::record_exceptions(&lp);
    lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, _t: NewTask| Ok(()))));
    let t = lp.create_task(async { panic!("never runs") })?;
    assert!(t.cancelled());
    assert!(seen.take().is_empty());
    Ok(())
}

// asyncio 3.12's eager_task_factory (F38, issue: eager start).
#[test]
fn an_eager_task_runs_its_first_step_inside_create_task() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let (lp2, l2) = (lp.clone(), log.clone());
    let out = lp.run_until_complete(async move {
        // Set inside the running loop, so that only the inner task starts eagerly.
        lp2.set_task_factory(Some(eager_task_factory()));
        let l3 = l2.clone();
        let t = lp2.create_task(async move {
            l3.push("first step");
            let _ = sleep(0.0).await;
            l3.push("second step");
            9
        })?;
        l2.push("create_task returned");
        let v = t.await?;
        Ok::<_, evloop_task::Error>(v)
    })??;
    assert_eq!(out, 9);
    assert_eq!(
        log.take(),
        ["first step", "create_task returned", "second step"]
    );

    // With the loop not running, the eager factory schedules the task (asyncio's
    // `eager_start and self._loop.is_running()`): it runs on the loop, not inside create_task.
    let t = lp.create_task(async { 4 })?;
    assert!(!t.done());
    assert_eq!(lp.run_until_complete(t.clone())??, 4);
    Ok(())
}

// CPython: test_eager_task_factory.py (EagerTaskFactoryLoopTests::test_eager_task_factory_set
// runs `run_until_complete(main)` with the factory set) and tasks.Task.__init__, which starts a
// task eagerly only if its loop is running. With the eager factory set before the loop runs,
// main's first step runs inside the loop: get_running_loop, all_tasks and sleep work there.
#[test]
fn the_eager_factory_runs_main_inside_the_loop_when_set_before_it_runs() -> TestResult {
    let lp = EventLoop::new()?;
    lp.set_task_factory(Some(eager_task_factory()));
    let lp2 = lp.clone();
    let (running, listed, slept) = lp.run_until_complete(async move {
        let running = evloop_sched::get_running_loop().is_ok_and(|r| r.ptr_eq(&lp2));
        let me = current_task().ok_or("no current task")?;
        let listed = all_tasks()?.iter().any(|t| t.ptr_eq(&me));
        let slept = sleep(0.0).await.is_ok();
        Ok::<_, Box<dyn StdError>>((running, listed, slept))
    })??;
    assert!(running, "get_running_loop() inside main's first step");
    assert!(listed, "all_tasks() lists main during its first step");
    assert!(slept, "sleep() works in main's first step");
    Ok(())
}

// CPython: tasks::…::test_all_tasks (F36 neighbour): all_tasks lists the pending tasks.
#[test]
fn all_tasks_lists_pending_tasks_only() -> TestResult {
    let lp = EventLoop::new()?;
    assert!(all_tasks().is_err_and(|e| e.loop_error().is_some_and(|l| l.is_not_running())));
    let sleeper = lp.create_task(async { sleep(10.0).await })?;
    sleeper.set_name("sleeper");
    let quick = lp.create_task(async {})?;
    quick.set_name("quick");
    let names = lp.run_until_complete(async {
        let _ = sleep(0.0).await;
        let mut names: Vec<String> = all_tasks()?.iter().map(|t| t.name()).collect();
        names.sort();
        Ok::<_, evloop_task::Error>(names)
    })??;
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"sleeper".to_owned()));
    assert!(!names.contains(&"quick".to_owned()));
    sleeper.cancel(None);
    Ok(())
}

/// The names `all_tasks()` gives now, sorted (an error outside a running loop).
fn all_task_names() -> Result<Vec<String>, evloop_task::Error> {
    let mut names: Vec<String> = all_tasks()?.iter().map(|t| t.name()).collect();
    names.sort();
    Ok(names)
}

// CPython: tasks::…::test_all_tasks (F36 neighbour). Ours: a task joins the registry only when
// it suspends; before that `all_tasks` finds it in the ready queue, or as the current task,
// once each.
#[test]
fn all_tasks_lists_tasks_not_started_yet_and_the_current_one_once() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let (before, after_self_wake, later) = lp.run_until_complete(async move {
        current_task().ok_or("no current task")?.set_name("main");
        let queued = lp2.create_task(async {})?;
        queued.set_name("queued");
        // In main's first step: main is current, `queued`'s first step is in the queue.
        let before = all_task_names()?;
        // main wakes itself during its first step: now its next step is queued too.
        let after_self_wake = std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            std::task::Poll::Ready(all_task_names())
        })
        .await?;
        // After a suspension: `queued` has finished, main is in the registry.
        sleep(0.0).await?;
        let later = all_task_names()?;
        Ok::<_, Box<dyn StdError>>((before, after_self_wake, later))
    })??;
    assert_eq!(before, ["main", "queued"]);
    assert_eq!(after_self_wake, ["main", "queued"]);
    assert_eq!(later, ["main"]);
    Ok(())
}

// CPython: tasks::…::test_all_tasks with a task factory (F38). Ours: a task a factory holds
// unstarted is pending, and listed.
#[test]
fn all_tasks_lists_a_task_a_factory_holds_unstarted() -> TestResult {
    let lp = EventLoop::new()?;
    let held: Rc<RefCell<Vec<NewTask>>> = Rc::default();
    let h2 = held.clone();
    let lp2 = lp.clone();
    let names = lp.run_until_complete(async move {
        current_task().ok_or("no current task")?.set_name("main");
        let h3 = h2.clone();
        lp2.set_task_factory(Some(Rc::new(move |_lp: &EventLoop, t: NewTask| {
            t.task().set_name("held");
            h3.borrow_mut().push(t);
            Ok(())
        })));
        let t = lp2.create_task(async {})?;
        lp2.set_task_factory(None);
        let names = all_task_names()?;
        for new in h2.borrow_mut().drain(..) {
            new.start()?;
        }
        t.await?;
        Ok::<_, Box<dyn StdError>>(names)
    })??;
    assert_eq!(names, ["held", "main"]);
    assert!(held.borrow().is_empty());
    Ok(())
}

// asyncio 3.12's eager_task_factory (F38). Ours: during an eager task's first step the task that
// created it is not current, and is still listed.
#[test]
fn all_tasks_lists_the_creator_of_an_eager_task_during_its_first_step() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s2 = seen.clone();
    lp.run_until_complete(async move {
        current_task().ok_or("no current task")?.set_name("creator");
        lp2.set_task_factory(Some(eager_task_factory()));
        let child = lp2.create_task(async move {
            current_task().ok_or("no current task")?.set_name("eager");
            *s2.borrow_mut() = all_task_names()?;
            Ok::<_, Box<dyn StdError>>(())
        })?;
        lp2.set_task_factory(None);
        child.await??;
        Ok::<_, Box<dyn StdError>>(())
    })??;
    assert_eq!(*seen.borrow(), ["creator", "eager"]);
    Ok(())
}

// Ours: a panic inside a task is the task's failure, not a loop-killing panic.
#[test]
fn a_panic_in_a_task_becomes_its_failure() -> TestResult {
    let lp = EventLoop::new()?;
    let t = lp.create_task(async { panic!("inside") })?;
    let err = lp.run_until_complete(t)?.unwrap_err();
    assert!(err.is_failed() && err.is_panic());
    assert_eq!(err.to_string(), "panic: inside");
    let payload = err.take_exception().and_then(|e| e.into_panic().ok());
    assert_eq!(
        payload.and_then(|p| p.downcast_ref::<&str>().copied()),
        Some("inside")
    );
    // The loop is fine.
    assert_eq!(lp.run_until_complete(async { 2 })?, 2);
    Ok(())
}

// CPython: tasks::…::test_task_awaits_on_itself, test_other_loop_future (F35).
#[test]
fn awaiting_itself_or_another_loops_future_is_an_error() -> TestResult {
    let lp = EventLoop::new()?;
    type SelfAwaiting = evloop_task::Task<Result<(), evloop_task::Error>>;
    let slot: Rc<Cell<Option<SelfAwaiting>>> = Rc::new(Cell::new(None));
    let s2 = slot.clone();
    let t = lp.create_task(async move {
        let _ = sleep(0.0).await;
        match s2.take() {
            Some(me) => me.await?,
            None => Ok(()),
        }
    })?;
    slot.set(Some(t.clone()));
    let err = lp.run_until_complete(t)??.unwrap_err();
    assert!(err.is_invalid_state());
    assert_eq!(err.to_string(), "a task cannot await on itself");

    let other = EventLoop::new()?;
    let foreign = other.create_future::<()>();
    let err = lp.run_until_complete(foreign)?.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the future is attached to a different loop"
    );
    Ok(())
}

/// Keeps the texts of the warnings logged under the `evloop` target.
struct Warnings(std::sync::Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "evloop" && record.level() == log::Level::Warn {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(std::sync::Mutex::new(Vec::new()));

// CPython: base::…::test_log_slow_callbacks (H45), for a task: asyncio's warning formats the
// `Task.__step` handle, which names the task. Ours names it as its `Debug` does, as it was
// when the slow step began.
#[test]
fn a_slow_task_step_is_logged_with_the_task_name_in_debug_mode() -> TestResult {
    log::set_logger(&WARNINGS).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Warn);
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    // Far apart, so that a loaded machine cannot make the fast step look slow (a 20 ms
    // threshold saw a 41 ms `sleep(0)` step while five builds shared two cores).
    lp.set_slow_callback_duration(std::time::Duration::from_millis(250));
    let t = lp.create_task(async {
        std::thread::sleep(std::time::Duration::from_millis(400));
        // The second step is fast: not logged.
        sleep(0.0).await
    })?;
    t.set_name("slow-worker");
    lp.run_until_complete(t)???;
    let seen: Vec<String> = WARNINGS
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|w| w.contains("slow-worker"))
        .cloned()
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("Executing <Task pending name='slow-worker'> took "),
        "{seen:?}"
    );
    Ok(())
}
