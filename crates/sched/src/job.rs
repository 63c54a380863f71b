//! [`Job`]: one entry of the ready queue, a callback or a [`RawStep`], in two words.
//!
//! # Why two words
//!
//! The ready queue is the loop's hottest memory: a burst of a million task steps or callbacks
//! writes a million entries and reads them back, and page faults dominate such a run. The
//! obvious `enum { Callback(Rc<dyn Callback>), Step(RawStep) }` takes three words (two for
//! either payload, one for the tag); a `Job` takes two and allocates nothing more:
//!
//! - `data`: the step's pointer, or the callback's `Rc::into_raw` (one reference count);
//! - `vtable`: for a step, the caller's `&'static StepVTable`; for a callback, a
//!   `&'static CallbackVTable` made for its concrete type (`Once<F>`, `Repeating<F>`,
//!   `Arrived`), with bit 0 set as the tag.
//!
//! Both vtables are structs of fn pointers, so a reference to either is at least 4-aligned and
//! bit 0 of an untagged one is always clear (checked at compile time below). Only the vtable
//! word is tagged, never `data`: a step's pointer may be anything non-null, even
//! `NonNull::dangling()` (address 1). The tag is set and cleared with the strict-provenance
//! methods (`map_addr`), so the vtable pointer keeps its provenance.
//!
//! A callback's vtable turns its `data` back into the `Entry` (`Rc<dyn Callback>`) it came from,
//! so cancelling, debug-mode timing and panic reports work on an `Entry` exactly as before. Its
//! `run` goes one step further for the hot path: it rebuilds the `Rc<C>`, parks it in the
//! batch's `current` slot (where a panic report finds it) and calls `C::run` statically, so a
//! callback still costs one indirect call to run, as a `dyn Callback` did.
//!
//! # Ground rules
//!
//! - A `Job` owns what it holds: a callback job one `Rc` count, a step job the step. It is
//!   consumed once: run ([`Job::run`]), taken apart ([`Job::into_kind`]) or dropped (a
//!   callback's count is released; a step's `StepVTable::drop` is called).
//! - It is `!Send` (it holds raw pointers), like the `Rc` and the `RawStep` it stands for.

use std::any::Any;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::handle::{Callback, Entry};
use crate::step::{RawStep, StepVTable};

/// Bit 0 of [`Job::vtable`]: set for a callback, clear for a step.
const CALLBACK_TAG: usize = 1;

// The tag lives in bit 0 of a vtable reference, so neither vtable may be 1-aligned.
const _: () = assert!(align_of::<StepVTable>() > CALLBACK_TAG);
const _: () = assert!(align_of::<CallbackVTable>() > CALLBACK_TAG);

/// The functions of a callback job: a `'static` made for each concrete callback type (see
/// [`Erased`]).
///
/// Both take ownership of the `Rc` count behind `data`, which must come from
/// `Rc::<C>::into_raw` for the `C` the vtable was made for.
struct CallbackVTable {
    /// Takes back the count as an [`Entry`].
    into_entry: unsafe fn(NonNull<()>) -> Entry,
    /// Takes back the count into `current` (dropping what it held) and runs the callback.
    run: unsafe fn(NonNull<()>, &mut Option<Entry>),
}

/// The [`CallbackVTable`] of the callback type `C`.
struct Erased<C>(PhantomData<C>);

impl<C: Callback + 'static> Erased<C> {
    /// Promoted to a `'static` (it holds only fn pointers), one per `C`.
    const VTABLE: CallbackVTable = CallbackVTable {
        into_entry: Self::into_entry,
        run: Self::run,
    };

    /// # Safety
    ///
    /// `data` comes from `Rc::<C>::into_raw`, and its count is handed over here, once.
    unsafe fn into_entry(data: NonNull<()>) -> Entry {
        // SAFETY: the caller's contract: `data` is an `Rc<C>` turned raw, owning one count.
        unsafe { Rc::<C>::from_raw(data.as_ptr().cast_const().cast::<C>()) }
    }

    /// # Safety
    ///
    /// As [`into_entry`](Erased::into_entry).
    unsafe fn run(data: NonNull<()>, current: &mut Option<Entry>) {
        let this = data.as_ptr().cast_const().cast::<C>();
        // SAFETY: the caller's contract: `data` is an `Rc<C>` turned raw, owning one count.
        let rc = unsafe { Rc::<C>::from_raw(this) };
        *current = Some(rc);
        // SAFETY: `current` holds a count of this allocation and is borrowed by this function
        // alone, so it stays put (and the `C` alive) until `run` returns; an `Rc`'s value is
        // only ever shared, so a shared reference to it is sound. Calling `C::run` directly,
        // not through `dyn Callback`, lets it inline.
        unsafe { (*this).run() }
    }
}

/// One entry of the ready queue: a callback with its handle, or a bare [`RawStep`] (which has
/// no handle to cancel it and costs no allocation to queue). Two words; see the module docs.
pub(crate) struct Job {
    /// The step's pointer, or `Rc::into_raw` of the callback. Never tagged.
    data: NonNull<()>,
    /// A `&'static StepVTable`, or a `&'static CallbackVTable` with [`CALLBACK_TAG`] set.
    vtable: NonNull<()>,
}

/// A [`Job`] taken apart, for the paths that are not hot (`close()`, debug mode).
pub(crate) enum JobKind {
    Callback(Entry),
    Step(RawStep),
}

/// The vtable of a [`Job`], untagged.
enum VTable {
    Callback(&'static CallbackVTable),
    Step(&'static StepVTable),
}

impl Job {
    /// The job of the callback `rc`, which it owns (one count).
    #[inline]
    pub(crate) fn callback<C: Callback + 'static>(rc: Rc<C>) -> Job {
        let vtable: &'static CallbackVTable = &Erased::<C>::VTABLE;
        let raw = Rc::into_raw(rc).cast_mut().cast::<()>();
        // SAFETY: `Rc::into_raw` never returns null.
        let data = unsafe { NonNull::new_unchecked(raw) };
        Job {
            data,
            vtable: NonNull::from(vtable)
                .cast::<()>()
                .map_addr(|addr| addr | CALLBACK_TAG),
        }
    }

    /// The job of `step`, which it owns.
    #[inline]
    pub(crate) fn step(step: RawStep) -> Job {
        let (data, vtable) = step.into_raw();
        Job {
            data,
            vtable: NonNull::from(vtable).cast::<()>(),
        }
    }

    /// Decodes the vtable word.
    #[inline]
    fn vtable(&self) -> VTable {
        if self.vtable.addr().get() & CALLBACK_TAG != 0 {
            let vtable = self
                .vtable
                .as_ptr()
                .map_addr(|addr| addr & !CALLBACK_TAG)
                .cast::<CallbackVTable>();
            // SAFETY: a tagged word is made only by `Job::callback`, from a
            // `&'static CallbackVTable` with the tag added; clearing it gives that pointer back,
            // with its provenance.
            VTable::Callback(unsafe { &*vtable })
        } else {
            // SAFETY: an untagged word is made only by `Job::step`, from a `&'static StepVTable`.
            VTable::Step(unsafe { self.vtable.cast::<StepVTable>().as_ref() })
        }
    }

    /// Runs the job. A callback's [`Entry`] goes to `current` first, where it stays after the
    /// run (so that a panic report can name it); a step leaves `current` empty.
    #[inline]
    pub(crate) fn run(self, current: &mut Option<Entry>) {
        let this = ManuallyDrop::new(self);
        match this.vtable() {
            // SAFETY: a callback job's `data` is `Rc::<C>::into_raw` for the `C` of its vtable
            // (`Job::callback`), and its count is handed over once: `this` is never dropped.
            VTable::Callback(vtable) => unsafe { (vtable.run)(this.data, current) },
            VTable::Step(vtable) => {
                *current = None;
                // SAFETY: `RawStep::new`'s contract, which `Job::step` took over with the step:
                // this is the step's thread (a `Job` is `!Send`), and `this` is never dropped,
                // so `run` is the one call made with this pointer.
                unsafe { (vtable.run)(this.data) }
            }
        }
    }

    /// Takes the job apart: a callback's `Entry` (owning the job's count), or the `RawStep`.
    pub(crate) fn into_kind(self) -> JobKind {
        let this = ManuallyDrop::new(self);
        match this.vtable() {
            VTable::Callback(vtable) => {
                // SAFETY: as in `run`: the count is handed over once, `this` is never dropped.
                let entry = unsafe { (vtable.into_entry)(this.data) };
                JobKind::Callback(entry)
            }
            // SAFETY: the pointer and vtable came out of a `RawStep` (`Job::step`) whose
            // contract holds still: it was neither run nor dropped, and `this` never will be.
            VTable::Step(vtable) => JobKind::Step(unsafe { RawStep::new(this.data, vtable) }),
        }
    }

    /// If the job is a step whose vtable has an `inspect` function, shows the step to `sink`.
    pub(crate) fn inspect_step(&self, sink: &mut dyn Any) {
        if let VTable::Step(vtable) = self.vtable() {
            if let Some(inspect) = vtable.inspect {
                // SAFETY: `RawStep::new`'s contract: the step is unconsumed (it is borrowed
                // here), and this is its thread (a `Job` is `!Send`).
                unsafe { inspect(self.data, sink) }
            }
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        match self.vtable() {
            VTable::Callback(vtable) => {
                // SAFETY: as in `run`; a job that was run or taken apart is never dropped, so
                // this is the one hand-over of its count.
                let entry = unsafe { (vtable.into_entry)(self.data) };
                drop(entry);
            }
            // SAFETY: `RawStep::new`'s contract; a job that was run or taken apart is never
            // dropped, so this is the one call made with this pointer.
            VTable::Step(vtable) => unsafe { (vtable.drop)(self.data) },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, Location, catch_unwind};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::handle::{Once, RemoteOnce, Repeating, arrived};

    thread_local! {
        static RAN: Cell<u32> = const { Cell::new(0) };
        static DROPPED: Cell<u32> = const { Cell::new(0) };
        static INSPECTED: Cell<u32> = const { Cell::new(0) };
    }

    /// Counts a run.
    ///
    /// # Safety
    ///
    /// None needed: the pointer is never dereferenced (`unsafe` only to fit `StepVTable`).
    unsafe fn run(_: NonNull<()>) {
        RAN.with(|n| n.set(n.get() + 1));
    }
    /// Counts a drop.
    ///
    /// # Safety
    ///
    /// As [`run`].
    unsafe fn release(_: NonNull<()>) {
        DROPPED.with(|n| n.set(n.get() + 1));
    }
    /// Counts a look.
    ///
    /// # Safety
    ///
    /// As [`run`].
    unsafe fn inspect(_: NonNull<()>, _: &mut dyn Any) {
        INSPECTED.with(|n| n.set(n.get() + 1));
    }
    static COUNT: StepVTable = StepVTable {
        run,
        drop: release,
        inspect: Some(inspect),
    };

    fn dangling_step() -> Job {
        // SAFETY: the functions of `COUNT` never dereference the pointer.
        Job::step(unsafe { RawStep::new(NonNull::dangling(), &COUNT) })
    }

    fn counts() -> (u32, u32, u32) {
        (
            RAN.with(Cell::get),
            DROPPED.with(Cell::get),
            INSPECTED.with(Cell::get),
        )
    }

    /// Two words, and `Option<Job>` (what `pop_front` returns) no more.
    #[test]
    fn a_job_is_two_words() {
        assert_eq!(size_of::<Job>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<Option<Job>>(), 2 * size_of::<usize>());
    }

    /// A step whose pointer is `NonNull::dangling()` (address 1, the tag's value) stays a step,
    /// and is run, inspected or dropped through its own vtable.
    #[test]
    fn a_dangling_step_stays_a_step() {
        let job = dangling_step();
        assert_eq!(job.data.addr().get(), 1);
        job.inspect_step(&mut ());
        assert_eq!(counts(), (0, 0, 1));
        let mut current: Option<Entry> = Some(Once::new_rc(|| {}, Location::caller()));
        job.run(&mut current);
        assert!(current.is_none(), "a step leaves no callback to blame");
        assert_eq!(counts(), (1, 0, 1));
        drop(dangling_step());
        assert_eq!(counts(), (1, 1, 1));
        assert!(matches!(dangling_step().into_kind(), JobKind::Step(_)));
        assert_eq!(counts(), (1, 2, 1), "the RawStep taken out drops the step");
    }

    /// A callback job owns exactly one count: running it moves that count into `current`,
    /// dropping it unrun releases it, and taking it apart gives it back as the `Entry`.
    #[test]
    fn a_callback_job_owns_one_count() {
        let ran = Rc::new(Cell::new(0));
        let r2 = ran.clone();
        let rc = Once::new_rc(move || r2.set(r2.get() + 1), Location::caller());
        let job = Job::callback(rc.clone());
        assert_eq!(Rc::strong_count(&rc), 2);
        job.inspect_step(&mut ());
        let mut current = None;
        job.run(&mut current);
        assert_eq!(ran.get(), 1);
        let entry = current.take().map(|e| Rc::as_ptr(&e).cast::<()>());
        assert_eq!(entry, Some(Rc::as_ptr(&rc).cast::<()>()));
        assert_eq!(Rc::strong_count(&rc), 1);

        drop(Job::callback(rc.clone()));
        assert_eq!(Rc::strong_count(&rc), 1);

        let erased: Entry = rc.clone();
        match erased.into_job().into_kind() {
            JobKind::Callback(entry) => {
                assert!(std::ptr::addr_eq(Rc::as_ptr(&entry), Rc::as_ptr(&rc)));
                assert_eq!(Rc::strong_count(&rc), 2);
            }
            JobKind::Step(_) => panic!("a callback came back as a step"),
        }
        assert_eq!(Rc::strong_count(&rc), 1);
        assert_eq!(ran.get(), 1);
    }

    /// The erased paths (`Callback::into_job` for fd and signal callbacks, `arrived` for
    /// callbacks from other threads) make jobs that run the right callback; one that panics is
    /// left in `current`, which then owns the job's count.
    #[test]
    fn erased_and_arrived_callbacks_run_and_a_panicking_one_stays_in_current() {
        let calls = Rc::new(Cell::new(0));
        let c2 = calls.clone();
        let repeating = Repeating::new_entry(
            move || {
                c2.set(c2.get() + 1);
                panic!("repeating failed");
            },
            Location::caller(),
        );
        let mut current = None;
        for round in 1..=2 {
            let job = repeating.clone().into_job();
            let outcome = catch_unwind(AssertUnwindSafe(|| job.run(&mut current)));
            assert!(outcome.is_err());
            assert_eq!(calls.get(), round);
            let blamed = current.take().map(|e| Rc::ptr_eq(&e, &repeating));
            assert_eq!(blamed, Some(true), "the panicking callback is in `current`");
            assert_eq!(Rc::strong_count(&repeating), 1);
        }

        let ran = Arc::new(AtomicU32::new(0));
        let r2 = ran.clone();
        let remote = RemoteOnce::new_arc(
            move || {
                r2.fetch_add(1, Ordering::Relaxed);
            },
            Location::caller(),
        );
        arrived(remote.clone()).run(&mut current);
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        assert_eq!(Arc::strong_count(&remote), 2, "`current` holds the arrival");
        current = None;
        assert_eq!(Arc::strong_count(&remote), 1);
        drop(arrived(remote.clone()));
        assert_eq!(Arc::strong_count(&remote), 1);
        assert!(current.is_none());
    }
}
