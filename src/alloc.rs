//! An allocator that counts allocations, compiled in only with the `count-allocs` feature, so
//! a benchmark can show how many heap allocations a request costs (scripts/alloc.sh).

use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Allocations (and reallocations) so far; None when the feature is off.
pub fn allocations() -> Option<u64> {
    if cfg!(feature = "count-allocs") {
        Some(ALLOCATIONS.load(Ordering::Relaxed))
    } else {
        None
    }
}

#[cfg(feature = "count-allocs")]
pub struct Counting;

#[cfg(feature = "count-allocs")]
// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side
// effect only.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        std::alloc::System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        std::alloc::System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        std::alloc::System.realloc(ptr, layout, new)
    }
}
