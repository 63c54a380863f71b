//! Far deadlines: seconds, days, years and `u64::MAX` work on every level,
//! and the arithmetic saturates instead of overflowing.

use evloop_timer::{LEVEL_SPAN_NANOS, TimerWheel};

const SEC: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * SEC;
const YEAR: u64 = 365 * DAY;

#[test]
fn deadlines_years_ahead_expire_in_order_and_not_before() {
    let mut wheel = TimerWheel::new();
    let deadlines = [
        2 * YEAR + 5,
        YEAR,
        100 * YEAR,
        DAY + 1,
        DAY,
        3 * SEC,
        500 * YEAR,
    ];
    for (i, &deadline) in deadlines.iter().enumerate() {
        wheel.insert(deadline, i);
    }
    let mut sorted = deadlines;
    sorted.sort_unstable();
    for &deadline in &sorted {
        assert_eq!(wheel.next_deadline(), Some(deadline));
        assert_eq!(wheel.pop_expired(deadline - 1), None, "early at {deadline}");
        let (got, _) = wheel.pop_expired(deadline).expect("due at its deadline");
        assert_eq!(got, deadline);
    }
    assert!(wheel.is_empty());
}

#[test]
fn u64_max_is_a_valid_deadline() {
    let mut wheel = TimerWheel::new();
    wheel.insert(u64::MAX, "end of time");
    wheel.insert(u64::MAX - 1, "just before");
    wheel.insert(u64::MAX, "end of time, second");
    assert_eq!(wheel.pop_expired(u64::MAX - 2), None);
    let fired: Vec<&str> = wheel.drain_expired(u64::MAX).map(|(_, s)| s).collect();
    assert_eq!(fired, ["just before", "end of time", "end of time, second"]);
}

#[test]
fn time_at_u64_max_accepts_further_inserts() {
    let mut wheel = TimerWheel::new();
    assert_eq!(wheel.pop_expired(u64::MAX), None);
    wheel.insert(u64::MAX, 2);
    wheel.insert(0, 1);
    assert_eq!(wheel.now(), u64::MAX);
    let fired: Vec<_> = wheel.drain_expired(0).collect();
    assert_eq!(fired, [(0, 1), (u64::MAX, 2)]);
}

#[test]
fn every_level_boundary_is_reached_exactly() {
    // Walk time forward from one level's span to the next, with a timer at
    // each boundary and one tick either side, starting from a time that is
    // not aligned to anything.
    let start = 12_345_678_901;
    let mut wheel = TimerWheel::new();
    assert_eq!(wheel.pop_expired(start), None);
    let mut expected = Vec::new();
    for &span in &LEVEL_SPAN_NANOS[..LEVEL_SPAN_NANOS.len() - 1] {
        for deadline in [
            start + span - 1,
            start + span,
            start.saturating_add(span + 1),
        ] {
            wheel.insert(deadline, deadline);
            expected.push(deadline);
        }
    }
    expected.sort_unstable();
    for &deadline in &expected {
        assert_eq!(wheel.pop_expired(deadline - 1), None);
        assert_eq!(wheel.pop_expired(deadline), Some((deadline, deadline)));
    }
}

#[test]
fn a_far_timer_does_not_delay_near_ones_inserted_later() {
    let mut wheel = TimerWheel::new();
    wheel.insert(10 * YEAR, "cron");
    wheel.insert(SEC, "first");
    assert_eq!(wheel.pop_expired(SEC), Some((SEC, "first")));
    assert_eq!(wheel.next_deadline(), Some(10 * YEAR));
    // After the far timer became the earliest, near timers still go first.
    wheel.insert(2 * SEC, "second");
    assert_eq!(wheel.next_deadline(), Some(2 * SEC));
    assert_eq!(wheel.pop_expired(3 * SEC), Some((2 * SEC, "second")));
    assert_eq!(wheel.pop_expired(YEAR), None);
    assert_eq!(wheel.pop_expired(10 * YEAR), Some((10 * YEAR, "cron")));
}
