//! Poison-tolerant locking, the one helper every `std::sync::Mutex` in the crate goes through
//! (as quinn's `mutex.rs` does for its own).
//!
//! A mutex is poisoned when a thread panicked while holding it. The data behind the crate's
//! locks is consistent between any two operations (each operation is a short critical
//! section that mutates the value in one step), so a panic elsewhere must not take down every
//! later user of the lock: they keep the value as it was.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the value even if another thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_yields_its_value() {
        let m = Mutex::new(7);
        let panicked = std::thread::scope(|s| {
            s.spawn(|| {
                let mut guard = m.lock().unwrap();
                *guard = 8;
                panic!("poison the lock");
            })
            .join()
            .is_err()
        });
        assert!(panicked);
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 8, "the value written before the panic is kept");
        *lock(&m) = 9;
        assert_eq!(*lock(&m), 9);
    }
}
