//! Counting heap allocations: a [`GlobalAlloc`] wrapper around [`System`].
//!
//! A benchmark binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: ropewalk_bench::alloc::CountingAlloc = ropewalk_bench::alloc::CountingAlloc;
//! ```
//!
//! Counting is off by default, so timed runs pay one relaxed load per allocation and
//! nothing else; [`count`] switches it on around a separate, untimed pass. Every call to
//! `alloc`, `alloc_zeroed` and `realloc` counts as one allocation (a `realloc` is a trip to
//! the allocator too); `dealloc` is not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations while [`count`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[inline]
fn note(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is bumping atomic counters, which neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this wrapper) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller guarantees
        // `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap allocations per operation, measured by [`count`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocStats {
    /// Allocator calls (`alloc`, `alloc_zeroed`, `realloc`) per operation.
    pub allocs_per_op: f64,
    /// Bytes requested per operation.
    pub bytes_per_op: f64,
}

/// Runs `op` `iters` times with counting on, and returns the allocations per call.
///
/// Counting is process-wide: run it while no other thread allocates.
pub fn count(iters: u64, mut op: impl FnMut()) -> AllocStats {
    let iters = iters.max(1);
    ALLOCS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..iters {
        op();
    }
    COUNTING.store(false, Ordering::SeqCst);
    AllocStats {
        allocs_per_op: ALLOCS.load(Ordering::Relaxed) as f64 / iters as f64,
        bytes_per_op: BYTES.load(Ordering::Relaxed) as f64 / iters as f64,
    }
}

/// Whether [`CountingAlloc`] is this process's global allocator (a binary that forgot the
/// `#[global_allocator]` line would report zero allocations everywhere).
pub fn installed() -> bool {
    count(1, || drop(std::hint::black_box(Box::new(0u64)))).allocs_per_op >= 1.0
}
