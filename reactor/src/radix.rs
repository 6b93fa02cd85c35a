//! A radix heap: the timer queue's priority queue.
//!
//! Timers are a *monotone* priority queue: a timer is never scheduled before the earliest
//! one that has already been taken out as due (a deadline is "now + delay", and a call is
//! taken out only once "now" has reached it). A radix heap uses that: keys live in 65
//! buckets by the highest bit in which they differ from `last`, the last key taken out, so
//! inserting is one append, and taking out the minimum scans one bucket and moves its
//! entries to lower buckets, each entry moving at most once per bit of the key. Every access
//! is sequential, where a binary heap of a million timers takes a cache miss per level on
//! every pop (~20 levels).
//!
//! Entries with equal keys come out in the order they went in (a timer's documented
//! order: calls due at the same time run in the order they were made), because equal keys
//! always share a bucket and buckets keep their order.
//!
//! Removal is lazy, as before: the caller says which entries are stale (`live`), and the
//! heap drops them when it meets them.

/// Bucket 0 holds keys equal to `last`; bucket `b > 0` holds keys whose highest bit
/// differing from `last` is bit `b - 1`.
const BUCKETS: usize = 65;

pub(crate) struct RadixHeap<T> {
    /// The last minimum taken out: every key in the heap is at least this.
    last: u64,
    buckets: Vec<Vec<(u64, T)>>,
    /// Bucket 0 is a queue: entries before `head` were taken out.
    head: usize,
    /// Entries held, stale ones included.
    len: usize,
    /// Entries gone stale and not dropped yet (as the owner reported them): while none
    /// are, finding the minimum skips the pass that drops them.
    stale: usize,
    /// Where the smallest entry outside bucket 0 is (bucket, index), if known: a peek
    /// found it, and pushes since went after it. It may have gone stale since.
    min_rest: Option<(usize, usize)>,
}

impl<T: Copy> RadixHeap<T> {
    pub(crate) fn new() -> RadixHeap<T> {
        RadixHeap {
            last: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            head: 0,
            len: 0,
            stale: 0,
            min_rest: None,
        }
    }

    /// Entries held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// One entry has gone stale (its timer was cancelled or moved).
    pub(crate) fn note_stale(&mut self) {
        self.stale += 1;
    }

    fn bucket(&self, key: u64) -> usize {
        if key == self.last {
            0
        } else {
            (u64::BITS - (key ^ self.last).leading_zeros()) as usize
        }
    }

    /// Adds an entry. A key below the last one taken out (which a monotone clock never
    /// makes) is taken as that one: it was due already.
    pub(crate) fn push(&mut self, key: u64, value: T) {
        let key = key.max(self.last);
        let b = self.bucket(key);
        self.buckets[b].push((key, value));
        self.len += 1;
        if let (true, Some((mb, mi))) = (b > 0, self.min_rest) {
            // Strictly smaller only: an equal key went in later, so it comes out later.
            if key < self.buckets[mb][mi].0 {
                self.min_rest = Some((b, self.buckets[b].len() - 1));
            }
        }
    }

    /// The smallest live entry, without taking it out (`last` does not move, so later
    /// pushes may still go below it). Stale entries met on the way are dropped.
    pub(crate) fn peek(&mut self, live: impl Fn(&T) -> bool) -> Option<(u64, T)> {
        self.skip_stale_front(&live);
        if let Some(&e) = self.buckets[0].get(self.head) {
            return Some(e);
        }
        let (b, i) = self.min_rest(&live)?;
        Some(self.buckets[b][i])
    }

    /// Where the smallest live entry outside bucket 0 is: the cached place while that
    /// entry is live, else found again (one pass over the first non-empty bucket).
    fn min_rest(&mut self, live: &impl Fn(&T) -> bool) -> Option<(usize, usize)> {
        if let Some((b, i)) = self.min_rest {
            if live(&self.buckets[b][i].1) {
                return Some((b, i));
            }
        }
        let b = self.first_rest(live)?;
        // The first with the smallest key is the one that went in first.
        let (i, _) = self.buckets[b]
            .iter()
            .enumerate()
            .min_by_key(|(i, e)| (e.0, *i))?;
        self.min_rest = Some((b, i));
        Some((b, i))
    }

    /// Takes out the smallest live entry. Call it only for an entry that is due, so that
    /// every key pushed afterwards is at least its key.
    pub(crate) fn pop(&mut self, live: impl Fn(&T) -> bool) -> Option<(u64, T)> {
        self.skip_stale_front(&live);
        if self.head == self.buckets[0].len() {
            let (b, i) = self.min_rest(&live)?;
            self.redistribute(b, i);
            // Stale entries with the same key may have come before the live one.
            self.skip_stale_front(&live);
        }
        let e = self.buckets[0][self.head];
        self.head += 1;
        self.len -= 1;
        Some(e)
    }

    /// Keeps only live entries (after many removals, so memory follows live timers).
    pub(crate) fn retain(&mut self, live: impl Fn(&T) -> bool) {
        let head = self.head;
        self.buckets[0].drain(..head);
        self.head = 0;
        let mut len = 0;
        for b in &mut self.buckets {
            b.retain(|e| live(&e.1));
            len += b.len();
        }
        self.len = len;
        self.stale = 0;
        self.min_rest = None;
    }

    /// Drops stale entries at the front of bucket 0 (and resets it once taken out).
    fn skip_stale_front(&mut self, live: &impl Fn(&T) -> bool) {
        let q = &mut self.buckets[0];
        while let Some(e) = q.get(self.head) {
            if live(&e.1) {
                return;
            }
            self.head += 1;
            self.len -= 1;
            self.stale = self.stale.saturating_sub(1);
        }
        q.clear();
        self.head = 0;
    }

    /// The first non-empty bucket after 0, stale entries dropped from it first (so its
    /// minimum is live).
    fn first_rest(&mut self, live: &impl Fn(&T) -> bool) -> Option<usize> {
        self.min_rest = None;
        for b in 1..BUCKETS {
            let bucket = &mut self.buckets[b];
            if bucket.is_empty() {
                continue;
            }
            if self.stale > 0 {
                let before = bucket.len();
                bucket.retain(|e| live(&e.1));
                let dropped = before - bucket.len();
                self.len -= dropped;
                self.stale = self.stale.saturating_sub(dropped);
            }
            if !bucket.is_empty() {
                return Some(b);
            }
        }
        None
    }

    /// Bucket 0 is empty: `last` moves to the key of bucket `b`'s smallest entry (at
    /// `i`), and `b`'s entries move to the lower buckets they now belong to (in order, so
    /// equal keys keep theirs).
    fn redistribute(&mut self, b: usize, i: usize) {
        let mut moving = std::mem::take(&mut self.buckets[b]);
        self.last = moving[i].0;
        self.min_rest = None;
        for &(key, value) in &moving {
            let to = self.bucket(key);
            debug_assert!(to < b, "an entry moves down");
            self.buckets[to].push((key, value));
        }
        moving.clear();
        self.buckets[b] = moving;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashSet};

    /// A reference: a sorted set of (key, seq).
    #[test]
    fn agrees_with_a_sorted_set_under_random_use() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for round in 0..200 {
            let dead = RefCell::new(HashSet::new());
            let mut heap = RadixHeap::new();
            let mut reference = BTreeSet::new();
            let mut now = 0u64;
            let mut seq = 0u64;
            let spread = [4u64, 100, 1 << 20, 1 << 40][round % 4];
            for _ in 0..2000 {
                match rnd() % 10 {
                    0..=4 => {
                        let key = now + rnd() % spread;
                        heap.push(key, seq);
                        reference.insert((key, seq));
                        seq += 1;
                    }
                    5 => {
                        // Cancel a random live entry.
                        if let Some(&(k, s)) = reference
                            .iter()
                            .nth((rnd() % (reference.len() as u64 + 1)) as usize)
                        {
                            reference.remove(&(k, s));
                            dead.borrow_mut().insert(s);
                            heap.note_stale();
                        }
                    }
                    6 => {
                        let live = |s: &u64| !dead.borrow().contains(s);
                        let want = reference.iter().next().copied();
                        let got = heap.peek(live);
                        assert_eq!(got, want, "peek");
                    }
                    7 => {
                        let live = |s: &u64| !dead.borrow().contains(s);
                        heap.retain(live);
                        assert_eq!(heap.len(), reference.len());
                    }
                    _ => {
                        // Time moves on; everything due comes out, in order.
                        now += rnd() % spread;
                        loop {
                            let live = |s: &u64| !dead.borrow().contains(s);
                            let Some((k, s)) = heap.peek(live) else { break };
                            if k > now {
                                break;
                            }
                            let popped = heap.pop(live);
                            assert_eq!(popped, Some((k, s)));
                            assert_eq!(reference.pop_first(), Some((k, s)));
                        }
                        assert!(reference.first().is_none_or(|&(k, _)| k > now));
                    }
                }
            }
        }
    }

    #[test]
    fn equal_keys_come_out_in_the_order_they_went_in() {
        let mut heap = RadixHeap::new();
        for (i, key) in [5u64, 3, 5, 3, 9, 5].into_iter().enumerate() {
            heap.push(key, i);
        }
        let mut out = Vec::new();
        while let Some((k, i)) = heap.pop(|_| true) {
            out.push((k, i));
        }
        assert_eq!(out, [(3, 1), (3, 3), (5, 0), (5, 2), (5, 5), (9, 4)]);
    }

    #[test]
    fn a_key_below_the_last_one_taken_out_comes_out_next() {
        let mut heap = RadixHeap::new();
        heap.push(10, 'a');
        heap.push(20, 'b');
        assert_eq!(heap.pop(|_| true), Some((10, 'a')));
        heap.push(5, 'c');
        assert_eq!(heap.pop(|_| true), Some((10, 'c')));
        assert_eq!(heap.pop(|_| true), Some((20, 'b')));
        assert_eq!(heap.pop(|_| true), None);
    }
}
