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
    /// The bucket whose minimum was last found by a pass over it (see `min_by_scan`).
    scanned: Option<usize>,
    /// A bucket sorted by key, for one whose minimum keeps going stale (see `Run`).
    run: Option<Run>,
}

/// A bucket sorted by key (stably: equal keys keep their order), so that when its
/// smallest entries are cancelled one after another (a timeout per request, cancelled
/// when the answer comes, oldest first) the next is found by stepping over them, not by a
/// pass over the bucket each time. Entries pushed after the sort are its tail, unsorted;
/// `tail_min` is the smallest key pushed there.
struct Run {
    bucket: usize,
    cursor: usize,
    end: usize,
    tail_min: u64,
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
            scanned: None,
            run: None,
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
        if let Some(run) = self.run.as_mut().filter(|r| r.bucket == b) {
            run.tail_min = run.tail_min.min(key);
        }
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
    /// entry is live, else found again in the first bucket with a live entry.
    fn min_rest(&mut self, live: &impl Fn(&T) -> bool) -> Option<(usize, usize)> {
        if let Some((b, i)) = self.min_rest {
            if live(&self.buckets[b][i].1) {
                return Some((b, i));
            }
        }
        self.min_rest = None;
        for b in 1..BUCKETS {
            if self.buckets[b].is_empty() {
                continue;
            }
            let found = if self.run.as_ref().is_some_and(|r| r.bucket == b) {
                self.min_in_run(live)
            } else {
                self.min_by_scan(b, live)
            };
            if let Some(i) = found {
                self.min_rest = Some((b, i));
                return Some((b, i));
            }
            // Every entry of `b` was stale, and is gone: on to the next bucket.
        }
        None
    }

    /// The smallest live entry of bucket `b`, by one pass over it (stale entries dropped
    /// first, if any are known). A second search of the same bucket, before anything
    /// moved, means its smallest entry went stale: the bucket is sorted instead, once.
    fn min_by_scan(&mut self, b: usize, live: &impl Fn(&T) -> bool) -> Option<usize> {
        if self.stale > 0 {
            self.drop_stale(b, live);
        }
        if self.buckets[b].is_empty() {
            return None;
        }
        if self.scanned == Some(b) {
            return self.sort_run(b);
        }
        self.scanned = Some(b);
        // The first with the smallest key is the one that went in first.
        let (i, _) = self.buckets[b]
            .iter()
            .enumerate()
            .min_by_key(|(i, e)| (e.0, *i))?;
        Some(i)
    }

    /// The smallest live entry of the sorted bucket: the first live one from the cursor,
    /// unless the unsorted tail may hold a smaller key, then sorted again.
    fn min_in_run(&mut self, live: &impl Fn(&T) -> bool) -> Option<usize> {
        let run = self.run.as_mut().expect("a run");
        let bucket = &mut self.buckets[run.bucket];
        while run.cursor < run.end && !live(&bucket[run.cursor].1) {
            run.cursor += 1;
        }
        let has_tail = run.end < bucket.len();
        // An equal key in the tail went in later: the sorted one comes first.
        if run.cursor < run.end && (!has_tail || bucket[run.cursor].0 <= run.tail_min) {
            return Some(run.cursor);
        }
        let b = run.bucket;
        self.drop_stale(b, live);
        self.sort_run(b)
    }

    /// Drops the stale entries of bucket `b`.
    fn drop_stale(&mut self, b: usize, live: &impl Fn(&T) -> bool) {
        let bucket = &mut self.buckets[b];
        let before = bucket.len();
        bucket.retain(|e| live(&e.1));
        let dropped = before - bucket.len();
        self.len -= dropped;
        self.stale = self.stale.saturating_sub(dropped);
    }

    /// Sorts bucket `b` (stably, by key) into the run; its first entry is the smallest.
    /// `None`, and no run, if the bucket is empty.
    fn sort_run(&mut self, b: usize) -> Option<usize> {
        let bucket = &mut self.buckets[b];
        if bucket.is_empty() {
            self.run = None;
            return None;
        }
        bucket.sort_by_key(|e| e.0);
        self.run = Some(Run {
            bucket: b,
            cursor: 0,
            end: bucket.len(),
            tail_min: u64::MAX,
        });
        Some(0)
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
        self.scanned = None;
        self.run = None;
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

    /// Bucket 0 is empty: `last` moves to the key of bucket `b`'s smallest entry (at
    /// `i`), and `b`'s entries move to the lower buckets they now belong to (in order, so
    /// equal keys keep theirs).
    fn redistribute(&mut self, b: usize, i: usize) {
        let mut moving = std::mem::take(&mut self.buckets[b]);
        self.last = moving[i].0;
        self.min_rest = None;
        self.scanned = None;
        self.run = None;
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

    /// A timeout per request, cancelled oldest first as the answers come, a new one for
    /// each new request: the smallest entry goes stale again and again (the sorted run).
    #[test]
    fn cancelling_the_smallest_again_and_again_keeps_the_order() {
        let dead = RefCell::new(HashSet::new());
        let mut heap = RadixHeap::new();
        let mut reference = BTreeSet::new();
        let mut seq = 0u64;
        let mut push = |heap: &mut RadixHeap<u64>, reference: &mut BTreeSet<(u64, u64)>, k| {
            heap.push(k, seq);
            reference.insert((k, seq));
            seq += 1;
        };
        for i in 0..500 {
            push(&mut heap, &mut reference, 1_000_000 + i * 7 % 300);
        }
        for i in 0..5000u64 {
            let live = |s: &u64| !dead.borrow().contains(s);
            assert_eq!(heap.peek(live), reference.first().copied(), "step {i}");
            let (k, s) = reference.pop_first().expect("never empty");
            dead.borrow_mut().insert(s);
            heap.note_stale();
            // Later keys mostly, now and then one below the smallest, and equal keys.
            let key = match i % 5 {
                0 => k,
                1 => k.saturating_sub(3).max(1_000_000),
                _ => k + 300 + i % 11,
            };
            push(&mut heap, &mut reference, key);
        }
        let live = |s: &u64| !dead.borrow().contains(s);
        while let Some(e) = heap.pop(live) {
            assert_eq!(Some(e), reference.pop_first());
        }
        assert!(reference.is_empty());
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
