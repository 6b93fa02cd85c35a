//! Spare step boxes: the box of a step whose closure has run is kept, per thread, for the
//! next step of the same type.
//!
//! A callback that captures something (another Deferred, a connection) is boxed as a step,
//! one allocation, freed when it has run. A program adds the same few callbacks over and
//! over (one per request, per line), so the box of one is, most often, the right box for
//! the next: keeping it saves a `malloc` and a `free` per step.
//!
//! A small direct-mapped table, indexed by the step's type (its `TypeId`, folded at compile
//! time): a slot holds one empty box of one type, and a step of another type that maps to
//! the same slot replaces it. Only small boxes are kept, so the table holds little memory.
//! A box is handed out as its own type only if it is that type (`Box<dyn Any>::downcast`).

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::hash::{Hash, Hasher};

/// How many boxes a thread keeps, at most.
const SLOTS: usize = 64;
const _: () = assert!(SLOTS.is_power_of_two());

/// The largest box kept, in bytes.
const MAX_SIZE: usize = 64;

thread_local! {
    static SPARE: [Cell<Option<Box<dyn Any>>>; SLOTS] =
        const { [const { Cell::new(None) }; SLOTS] };
}

/// Whether boxes of `S` are kept: not zero-sized (those are no allocation), not large.
#[inline(always)]
pub(crate) fn keeps<S: 'static>() -> bool {
    let size = size_of::<S>();
    size != 0 && size <= MAX_SIZE
}

/// The slot of `S`'s boxes.
#[inline(always)]
fn slot<S: 'static>() -> usize {
    /// Keeps the bits a `TypeId` hashes into, already a hash.
    struct Bits(u64);
    impl Hasher for Bits {
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 ^= n;
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }
    let mut bits = Bits(0);
    TypeId::of::<S>().hash(&mut bits);
    // Fibonacci hashing: the top bits of the product mix all of the id's bits.
    (bits.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

/// A kept box of `S`, if the thread has one. Its content is whatever the last step left
/// (something that owns nothing); the caller overwrites it.
#[inline(always)]
pub(crate) fn take<S: 'static>() -> Option<Box<S>> {
    if !keeps::<S>() {
        return None;
    }
    let i = slot::<S>();
    // Each thread-local access is a closure this small, so that it is inlined.
    let b = SPARE.try_with(|s| s[i].take()).ok().flatten()?;
    match b.downcast::<S>() {
        Ok(b) => Some(b),
        Err(other) => take_other(i, other),
    }
}

/// Slot `i` held `other`, a box of another type: it stays there, and the pair slot is
/// looked in.
#[inline(never)]
fn take_other<S: 'static>(i: usize, other: Box<dyn Any>) -> Option<Box<S>> {
    SPARE
        .try_with(|s| {
            s[i].set(Some(other));
            match s[i ^ 1].take()?.downcast::<S>() {
                Ok(b) => Some(b),
                Err(other) => {
                    s[i ^ 1].set(Some(other));
                    None
                }
            }
        })
        .ok()
        .flatten()
}

/// Keeps `b` (emptied by the caller: it must own nothing) for the next step of its type:
/// in its slot; the box that was there moves to the pair slot, in place of the one there.
#[inline(always)]
pub(crate) fn give<S: 'static>(b: Box<S>) {
    if !keeps::<S>() {
        return;
    }
    let i = slot::<S>();
    let b: Box<dyn Any> = b;
    if let Ok(Some(old)) = SPARE.try_with(move |s| s[i].replace(Some(b))) {
        give_other(i, old);
    }
}

/// Slot `i` held `old`: it goes to the pair slot, and the box there is dropped.
#[cold]
#[inline(never)]
fn give_other(i: usize, old: Box<dyn Any>) {
    if let Ok(Some(older)) = SPARE.try_with(|s| s[i ^ 1].replace(Some(old))) {
        drop(older);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_box_comes_back_for_its_own_type_only() {
        give(Box::new([7u64; 2]));
        assert!(take::<[u32; 4]>().is_none());
        assert_eq!(take::<[u64; 2]>().map(|b| *b), Some([7u64; 2]));
        assert!(take::<[u64; 2]>().is_none(), "a box is handed out once");
    }

    #[test]
    fn zero_sized_and_large_boxes_are_not_kept() {
        give(Box::new(()));
        assert!(take::<()>().is_none());
        give(Box::new([0u8; MAX_SIZE + 1]));
        assert!(take::<[u8; MAX_SIZE + 1]>().is_none());
    }
}
