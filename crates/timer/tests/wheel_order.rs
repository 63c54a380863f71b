//! Expiry order: exact `(deadline, insertion)` order across slots and levels,
//! FIFO among equal deadlines, past deadlines, and the exactness of
//! `next_deadline` after every kind of change.

use evloop_timer::{LEVEL_SPAN_NANOS, TICK_NANOS, TimerWheel};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

/// Every `(deadline, payload)` due at `now`, in the order handed out.
fn drain<T>(wheel: &mut TimerWheel<T>, now: u64) -> Vec<(u64, T)> {
    wheel.drain_expired(now).collect()
}

#[test]
fn deadlines_come_out_sorted_across_every_level() {
    // One deadline per level boundary and just around it, inserted in a
    // scrambled order.
    let mut deadlines = Vec::new();
    for &span in &LEVEL_SPAN_NANOS[..LEVEL_SPAN_NANOS.len() - 1] {
        deadlines.extend([span - 1, span, span + 1, span / 2 + 7]);
    }
    deadlines.extend([0, 1, TICK_NANOS - 1, TICK_NANOS, u64::MAX]);
    let mut scrambled = deadlines.clone();
    scrambled.reverse();
    scrambled.rotate_left(7);

    let mut wheel = TimerWheel::new();
    for &deadline in &scrambled {
        wheel.insert(deadline, deadline);
    }
    let fired = drain(&mut wheel, u64::MAX);
    let mut expected = deadlines.clone();
    expected.sort_unstable();
    let deadlines_out: Vec<u64> = fired.iter().map(|&(deadline, _)| deadline).collect();
    assert_eq!(deadlines_out, expected);
    assert!(fired.iter().all(|&(deadline, payload)| deadline == payload));
}

#[test]
fn nanosecond_apart_deadlines_in_one_tick_keep_their_order() {
    let mut wheel = TimerWheel::new();
    let base = 5 * TICK_NANOS;
    for offset in [7, 3, 5, 1, 6, 2, 4, 0] {
        wheel.insert(base + offset, offset);
    }
    let order: Vec<u64> = drain(&mut wheel, base + 10)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn equal_deadlines_are_first_in_first_out() {
    let mut wheel = TimerWheel::new();
    // Equal deadlines interleaved with other ones, near and far.
    for i in 0..50u32 {
        wheel.insert(3 * SEC, ('a', i));
        wheel.insert(3 * SEC + 1, ('b', i));
        wheel.insert(10 * MS, ('c', i));
    }
    let fired = drain(&mut wheel, 4 * SEC);
    let of = |tag: char| -> Vec<u32> {
        fired
            .iter()
            .filter(|(_, (t, _))| *t == tag)
            .map(|(_, (_, i))| *i)
            .collect()
    };
    let in_order: Vec<u32> = (0..50).collect();
    assert_eq!(of('a'), in_order);
    assert_eq!(of('b'), in_order);
    assert_eq!(of('c'), in_order);
    let tags: Vec<char> = fired.iter().map(|(_, (t, _))| *t).collect();
    assert!(tags[..50].iter().all(|&t| t == 'c'));
    assert!(tags[50..100].iter().all(|&t| t == 'a'));
    assert!(tags[100..].iter().all(|&t| t == 'b'));
}

#[test]
fn equal_deadlines_stay_fifo_when_inserted_after_time_moved_on() {
    let mut wheel = TimerWheel::new();
    wheel.insert(2 * SEC, "first");
    assert_eq!(wheel.pop_expired(SEC), None);
    wheel.insert(2 * SEC, "second");
    assert_eq!(wheel.pop_expired(2 * SEC - 1), None);
    wheel.insert(2 * SEC, "third");
    let order: Vec<&str> = drain(&mut wheel, 2 * SEC)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(order, ["first", "second", "third"]);
}

#[test]
fn no_timer_comes_out_before_its_deadline() {
    let mut wheel = TimerWheel::new();
    let deadline = 7 * SEC + 123;
    wheel.insert(deadline, ());
    for now in [0, SEC, 7 * SEC, deadline - TICK_NANOS, deadline - 1] {
        assert_eq!(wheel.pop_expired(now), None, "popped at {now}");
        assert_eq!(wheel.next_deadline(), Some(deadline));
    }
    assert_eq!(wheel.pop_expired(deadline), Some((deadline, ())));
}

#[test]
fn past_deadlines_are_due_at_once_in_deadline_order() {
    let mut wheel = TimerWheel::new();
    assert_eq!(wheel.pop_expired(10 * SEC), None);
    wheel.insert(11 * SEC, "future");
    wheel.insert(9 * SEC, "late");
    wheel.insert(0, "very late");
    wheel.insert(10 * SEC, "just now");
    assert_eq!(wheel.next_deadline(), Some(0));
    let order: Vec<&str> = drain(&mut wheel, 10 * SEC)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(order, ["very late", "late", "just now"]);
    assert_eq!(wheel.next_deadline(), Some(11 * SEC));
}

#[test]
fn a_past_deadline_goes_before_due_timers_not_yet_popped() {
    let mut wheel = TimerWheel::new();
    wheel.insert(5 * MS, 'b');
    wheel.insert(6 * MS, 'c');
    assert_eq!(wheel.pop_expired(10 * MS), Some((5 * MS, 'b')));
    // Inserted now with a deadline earlier than the one still due.
    wheel.insert(MS, 'a');
    assert_eq!(wheel.pop_expired(10 * MS), Some((MS, 'a')));
    assert_eq!(wheel.pop_expired(10 * MS), Some((6 * MS, 'c')));
}

#[test]
fn next_deadline_is_exact_after_each_change() {
    let mut wheel = TimerWheel::new();
    assert_eq!(wheel.next_deadline(), None);
    let far = wheel.insert(40 * SEC + 17, ());
    assert_eq!(wheel.next_deadline(), Some(40 * SEC + 17));
    let mid = wheel.insert(3 * SEC + 5, ());
    assert_eq!(wheel.next_deadline(), Some(3 * SEC + 5));
    let near = wheel.insert(3 * SEC + 4, ());
    assert_eq!(wheel.next_deadline(), Some(3 * SEC + 4));
    wheel.insert(3 * SEC + 4, ());
    wheel.cancel(near);
    assert_eq!(
        wheel.next_deadline(),
        Some(3 * SEC + 4),
        "an equal deadline remains"
    );
    assert_eq!(wheel.pop_expired(3 * SEC + 4), Some((3 * SEC + 4, ())));
    assert_eq!(wheel.next_deadline(), Some(3 * SEC + 5));
    wheel.cancel(mid);
    assert_eq!(wheel.next_deadline(), Some(40 * SEC + 17));
    wheel.cancel(far);
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn next_deadline_tracks_the_earliest_of_many_cancelled_in_order() {
    // Timeouts of equal length, cancelled in the order they were armed: the
    // pattern that keeps removing the earliest timer of a far slot.
    let mut wheel = TimerWheel::new();
    let keys: Vec<_> = (0..2_000u64)
        .map(|i| wheel.insert(30 * SEC + i * 1_000, i))
        .collect();
    for (i, &key) in keys.iter().enumerate().take(1_999) {
        assert_eq!(wheel.next_deadline(), Some(30 * SEC + i as u64 * 1_000));
        assert_eq!(wheel.cancel(key), Some(i as u64));
    }
    assert_eq!(wheel.next_deadline(), Some(30 * SEC + 1_999_000));
    assert_eq!(drain(&mut wheel, u64::MAX), [(30 * SEC + 1_999_000, 1_999)]);
}

#[test]
fn stepping_a_millisecond_at_a_time_matches_a_sorted_list() {
    // A small version of the benchmark: uniform deadlines over 2 s, a third
    // cancelled, expired in 1 ms steps.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut wheel = TimerWheel::new();
    let mut live = Vec::new();
    let mut keys = Vec::new();
    for i in 0..3_000u64 {
        let deadline = next() % (2 * SEC);
        keys.push(wheel.insert(deadline, i));
        live.push((deadline, i));
    }
    for i in (0..3_000).step_by(3) {
        assert_eq!(wheel.cancel(keys[i]), Some(i as u64));
    }
    live.retain(|&(_, i)| i % 3 != 0);
    live.sort_unstable();
    let mut fired = Vec::new();
    for step in 1..=2_001 {
        let now = step * MS;
        while let Some((deadline, i)) = wheel.pop_expired(now) {
            assert!(deadline <= now);
            fired.push((deadline, i));
        }
    }
    assert_eq!(fired, live);
}
