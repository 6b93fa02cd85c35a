//! The server-wide budget for buffered request bodies: each body being read reserves its
//! bytes (a `Content-Length` body all at once, a chunked one as it grows), and gives
//! them back when its request is done or its connection dies (the reservation is
//! dropped with what holds it).

use std::cell::Cell;
use std::rc::Rc;

/// Bytes of request bodies held across all of one server's connections.
pub(super) struct BodyBudget {
    limit: u64,
    used: Cell<u64>,
}

impl BodyBudget {
    pub(super) fn new(limit: u64) -> Rc<BodyBudget> {
        Rc::new(BodyBudget {
            limit,
            used: Cell::new(0),
        })
    }

    /// `bytes` more, if the budget has them.
    pub(super) fn reserve(self: &Rc<Self>, bytes: u64) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Counts `bytes` more as used, if the budget has them.
    fn take(&self, bytes: u64) -> bool {
        match self.used.get().checked_add(bytes) {
            Some(used) if used <= self.limit => {
                self.used.set(used);
                true
            }
            _ => false,
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.used.get()
    }
}

/// Bytes taken from a [`BodyBudget`], given back on drop.
pub(super) struct Reservation {
    budget: Rc<BodyBudget>,
    bytes: u64,
}

impl Reservation {
    /// Grows the reservation to `bytes`; false (and unchanged) if the budget lacks them.
    pub(super) fn grow_to(&mut self, bytes: u64) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes) else {
            return true;
        };
        if !self.budget.take(more) {
            return false;
        }
        self.bytes = bytes;
        true
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.set(self.budget.used.get() - self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(!b.grow_to(41));
        assert_eq!(b.bytes(), 40);
        drop(a);
        assert!(b.grow_to(90));
        assert_eq!(budget.used(), 90);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(u64::MAX).is_none());
    }
}
