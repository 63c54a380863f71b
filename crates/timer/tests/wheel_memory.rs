//! The memory per pending timer stated in the documentation.

use evloop_timer::TimerWheel;
use std::mem::size_of;

/// Bytes per pending timer besides the payload: its record plus its 4-byte
/// index in its slot, counted twice for the slot vector's spare capacity.
fn overhead<T>() -> usize {
    TimerWheel::<T>::ENTRY_BYTES + 2 * size_of::<u32>() - size_of::<T>()
}

#[test]
fn records_have_the_documented_sizes() {
    assert_eq!(TimerWheel::<()>::ENTRY_BYTES, 32);
    assert_eq!(TimerWheel::<u32>::ENTRY_BYTES, 32);
    assert_eq!(TimerWheel::<u64>::ENTRY_BYTES, 40);
    assert_eq!(TimerWheel::<Box<dyn FnOnce()>>::ENTRY_BYTES, 40);
    assert_eq!(TimerWheel::<String>::ENTRY_BYTES, 48);
}

#[test]
fn overhead_is_at_most_48_bytes_besides_the_payload() {
    assert!(overhead::<()>() <= 48);
    assert!(overhead::<u8>() <= 48);
    assert!(overhead::<u32>() <= 48);
    assert!(overhead::<u64>() <= 48);
    assert!(overhead::<Box<dyn FnOnce()>>() <= 48);
    assert!(overhead::<std::rc::Rc<()>>() <= 48);
    assert!(overhead::<String>() <= 48);
    assert!(overhead::<[u8; 100]>() <= 48);
}

#[test]
fn a_key_is_eight_bytes() {
    assert_eq!(size_of::<evloop_timer::TimerKey>(), 8);
}
