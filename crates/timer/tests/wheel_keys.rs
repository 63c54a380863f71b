//! Keys: cancel returns the payload once, stale keys (after expiry, after
//! cancel, after their storage was reused) match nothing, and the look-ups
//! agree with cancel.

use evloop_timer::TimerWheel;

const MS: u64 = 1_000_000;

#[test]
fn cancel_returns_the_payload_once() {
    let mut wheel = TimerWheel::new();
    let key = wheel.insert(5 * MS, String::from("payload"));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.cancel(key).as_deref(), Some("payload"));
    assert_eq!(wheel.cancel(key), None);
    assert!(wheel.is_empty());
    assert_eq!(wheel.pop_expired(u64::MAX), None);
}

#[test]
fn a_key_is_stale_after_its_timer_expired() {
    let mut wheel = TimerWheel::new();
    let key = wheel.insert(5 * MS, 'x');
    assert_eq!(wheel.pop_expired(5 * MS), Some((5 * MS, 'x')));
    assert_eq!(wheel.cancel(key), None);
    assert_eq!(wheel.deadline(key), None);
    assert!(!wheel.contains(key));
    assert_eq!(wheel.get(key), None);
}

#[test]
fn a_stale_key_does_not_cancel_the_timer_reusing_its_storage() {
    let mut wheel = TimerWheel::new();
    let old = wheel.insert(5 * MS, "old");
    assert_eq!(wheel.cancel(old), Some("old"));
    // The freed storage is reused by the next insert.
    let new = wheel.insert(5 * MS, "new");
    assert_ne!(old, new);
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.get(old), None);
    assert_eq!(wheel.get(new), Some(&"new"));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.pop_expired(5 * MS), Some((5 * MS, "new")));
}

#[test]
fn a_stale_key_from_an_expired_timer_does_not_touch_its_successor() {
    let mut wheel = TimerWheel::new();
    let old = wheel.insert(MS, 1);
    assert_eq!(wheel.pop_expired(MS), Some((MS, 1)));
    let new = wheel.insert(2 * MS, 2);
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.deadline(new), Some(2 * MS));
    assert_eq!(wheel.pop_expired(2 * MS), Some((2 * MS, 2)));
}

#[test]
fn storage_reused_many_times_still_rejects_every_older_key() {
    let mut wheel = TimerWheel::new();
    let mut stale = Vec::new();
    for round in 0..1_000u32 {
        let key = wheel.insert(u64::from(round), round);
        for &old in &stale {
            assert_eq!(wheel.cancel(old), None, "round {round}");
        }
        assert_eq!(wheel.cancel(key), Some(round));
        if round % 100 == 0 {
            stale.push(key);
        }
    }
    assert!(wheel.is_empty());
}

#[test]
fn mass_cancel_in_random_order_keeps_the_rest_in_order() {
    // More cancels than the wheel batches internally, interleaved with
    // inserts and checked against a sorted list after each pop.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut wheel = TimerWheel::new();
    let mut keys = Vec::new();
    let mut live = std::collections::BTreeSet::new();
    for i in 0..5_000u64 {
        let deadline = next() % (300 * MS);
        keys.push((wheel.insert(deadline, i), deadline, i));
        live.insert((deadline, i));
    }
    // Cancel a random 60 % (some keys twice), in random order.
    for _ in 0..3_500 {
        let pick = (next() % keys.len() as u64) as usize;
        let (key, deadline, i) = keys[pick];
        let expected = live.remove(&(deadline, i)).then_some(i);
        assert_eq!(wheel.cancel(key), expected);
        assert_eq!(wheel.len(), live.len());
        assert_eq!(wheel.next_deadline(), live.first().map(|&(d, _)| d));
    }
    let fired: Vec<(u64, u64)> = wheel.drain_expired(u64::MAX).collect();
    let expected: Vec<(u64, u64)> = live.into_iter().collect();
    assert_eq!(fired, expected);
}

#[test]
fn get_mut_changes_the_payload_that_expires() {
    let mut wheel = TimerWheel::new();
    let key = wheel.insert(3, vec![1]);
    if let Some(payload) = wheel.get_mut(key) {
        payload.push(2);
    }
    assert_eq!(wheel.get(key), Some(&vec![1, 2]));
    assert_eq!(wheel.pop_expired(3), Some((3, vec![1, 2])));
    assert_eq!(wheel.get_mut(key), None);
}

#[test]
fn cancelled_payloads_are_dropped_by_the_caller_not_kept() {
    use std::rc::Rc;
    let tracker = Rc::new(());
    let mut wheel = TimerWheel::new();
    let keys: Vec<_> = (0..100u64)
        .map(|i| wheel.insert(60_000 * MS + i, Rc::clone(&tracker)))
        .collect();
    assert_eq!(Rc::strong_count(&tracker), 101);
    for key in keys {
        drop(wheel.cancel(key));
    }
    // Nothing of the cancelled timers is held until their deadline.
    assert_eq!(Rc::strong_count(&tracker), 1);
    drop(wheel);
}

#[test]
fn dropping_the_wheel_drops_pending_payloads() {
    use std::rc::Rc;
    let tracker = Rc::new(());
    let mut wheel = TimerWheel::new();
    for i in 0..10u64 {
        wheel.insert(i * 1_000 * MS, Rc::clone(&tracker));
    }
    wheel.pop_expired(0);
    assert_eq!(Rc::strong_count(&tracker), 10);
    drop(wheel);
    assert_eq!(Rc::strong_count(&tracker), 1);
}
