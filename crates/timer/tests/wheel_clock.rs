//! A clock that steps back: `now` never goes back inside the wheel.

use evloop_timer::TimerWheel;

const MS: u64 = 1_000_000;

#[test]
fn a_smaller_now_is_clamped_to_the_current_time() {
    let mut wheel = TimerWheel::new();
    wheel.insert(10 * MS, 'a');
    wheel.insert(20 * MS, 'b');
    assert_eq!(wheel.pop_expired(15 * MS), Some((10 * MS, 'a')));
    assert_eq!(wheel.pop_expired(15 * MS), None);
    // The clock steps back: nothing changes, and the current time stays.
    assert_eq!(wheel.pop_expired(5 * MS), None);
    assert_eq!(wheel.now(), 15 * MS);
    assert_eq!(wheel.next_deadline(), Some(20 * MS));
}

#[test]
fn timers_due_at_the_clamped_time_still_expire_after_a_step_back() {
    let mut wheel = TimerWheel::new();
    assert_eq!(wheel.pop_expired(100 * MS), None);
    // Inserted "in the future" of a clock that then reads an earlier time.
    wheel.insert(90 * MS, "due");
    wheel.insert(150 * MS, "not yet");
    assert_eq!(wheel.pop_expired(50 * MS), Some((90 * MS, "due")));
    assert_eq!(wheel.pop_expired(50 * MS), None);
    assert_eq!(wheel.now(), 100 * MS);
    assert_eq!(wheel.pop_expired(150 * MS), Some((150 * MS, "not yet")));
}

#[test]
fn drain_with_an_earlier_time_uses_the_current_one() {
    let mut wheel = TimerWheel::new();
    for deadline in [1, 2, 3] {
        wheel.insert(deadline * MS, deadline);
    }
    assert_eq!(wheel.pop_expired(2 * MS), Some((MS, 1)));
    let rest: Vec<u64> = wheel.drain_expired(0).map(|(_, d)| d).collect();
    assert_eq!(rest, [2]);
    assert_eq!(wheel.len(), 1);
}
