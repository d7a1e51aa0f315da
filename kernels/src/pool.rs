//! A pool of freed buffers, reused by exact length.
//!
//! A training step allocates the same sizes every step. Fresh multi-megabyte allocations come
//! from the OS as untouched pages, and the first write to each page faults. With a warm pool
//! the second step on reuses the first step's buffers and touches no new memory. The engine
//! hands a tensor's buffer back when its storage drops.
//!
//! Buffers from [`take`] hold stale values: kernels must overwrite every element.
//! [`take_zeroed`] clears them.

use crate::Real;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Buffers smaller than this are left to the allocator: its small-object caches serve them well.
const MIN_POOLED_BYTES: usize = 64 * 1024;
/// The pool never holds more than this much idle memory.
const MAX_POOLED_BYTES: usize = 256 * 1024 * 1024;

/// Idle buffers of one length, and when that length was last asked for or returned.
struct SizeClass<T> {
    buffers: Vec<Vec<T>>,
    last_used: u64,
}

/// Idle buffers of one element type, by length.
pub struct BufferPool<T> {
    free: Mutex<HashMap<usize, SizeClass<T>>>,
    bytes: AtomicUsize,
    clock: AtomicUsize,
}

impl<T> BufferPool<T> {
    fn new() -> Self {
        BufferPool {
            free: Mutex::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
            clock: AtomicUsize::new(0),
        }
    }
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) as u64
    }
}

static POOL_F32: std::sync::LazyLock<BufferPool<f32>> = std::sync::LazyLock::new(BufferPool::new);
static POOL_F64: std::sync::LazyLock<BufferPool<f64>> = std::sync::LazyLock::new(BufferPool::new);

fn byte_len<T>(len: usize) -> usize {
    len * std::mem::size_of::<T>()
}

/// A buffer of `len` elements with unspecified (stale) values.
pub fn take<T: Real>(len: usize) -> Vec<T> {
    if let Some(v) = take_pooled::<T>(len) {
        return v;
    }
    vec![T::ZERO; len]
}

/// A buffer of `len` zeros, written rather than left to `calloc`: callers add into it, and a
/// read of a fresh calloc'd page maps the shared zero page, so the write after it takes a
/// second, copy-on-write fault that flushes every core's TLB.
pub fn take_zeroed<T: Real>(len: usize) -> Vec<T> {
    match take_pooled::<T>(len) {
        Some(mut v) => {
            v.iter_mut().for_each(|x| *x = T::ZERO);
            v
        }
        None => {
            let mut v = Vec::with_capacity(len);
            v.resize(len, T::ZERO);
            v
        }
    }
}

fn take_pooled<T: Real>(len: usize) -> Option<Vec<T>> {
    if byte_len::<T>(len) < MIN_POOLED_BYTES {
        return None;
    }
    let pool = pool_of::<T>()?;
    let now = pool.tick();
    let mut free = pool.free.lock().unwrap_or_else(|e| e.into_inner());
    let class = free.get_mut(&len)?;
    class.last_used = now;
    let v = class.buffers.pop()?;
    pool.bytes.fetch_sub(byte_len::<T>(len), Ordering::Relaxed);
    Some(v)
}

/// Hands a buffer back for reuse, or frees it if small. When the pool is full, the lengths
/// least recently used are freed first: a phase with other shapes (an evaluation pass) must not
/// lock the training loop's own sizes out of the pool.
pub fn give<T: Real>(v: Vec<T>) {
    let bytes = byte_len::<T>(v.len());
    if bytes < MIN_POOLED_BYTES || v.capacity() != v.len() || bytes > MAX_POOLED_BYTES {
        return;
    }
    let Some(pool) = pool_of::<T>() else { return };
    let now = pool.tick();
    let mut free = pool.free.lock().unwrap_or_else(|e| e.into_inner());
    while pool.bytes.load(Ordering::Relaxed) + bytes > MAX_POOLED_BYTES {
        let oldest = free
            .iter()
            .filter(|(_, c)| !c.buffers.is_empty())
            .min_by_key(|(_, c)| c.last_used)
            .map(|(&len, _)| len);
        let Some(len) = oldest else { break };
        if len == v.len() {
            // Evicting this length to keep one of the same would gain nothing.
            return;
        }
        free.get_mut(&len).expect("found above").buffers.pop();
        pool.bytes.fetch_sub(byte_len::<T>(len), Ordering::Relaxed);
    }
    pool.bytes.fetch_add(bytes, Ordering::Relaxed);
    let class = free.entry(v.len()).or_insert(SizeClass {
        buffers: Vec::new(),
        last_used: now,
    });
    class.last_used = now;
    class.buffers.push(v);
}

/// A workspace borrowed from the pool for the length of one call and handed back on drop.
/// Per-call scratch (im2col columns) allocated with `vec!` is large enough that the allocator
/// maps and unmaps it every time; each unmap flushes the other cores' TLBs, and each first
/// touch faults a page in. Values are stale, as from [`take`].
pub struct Scratch<T: Real>(Vec<T>);

impl<T: Real> Scratch<T> {
    /// A workspace of `len` elements, from the pool when it holds one of that length.
    pub fn new(len: usize) -> Self {
        Scratch(take(len))
    }
}

impl<T: Real> std::ops::Deref for Scratch<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Real> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Real> Drop for Scratch<T> {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// Bytes held idle by the pools (both element types).
pub fn idle_bytes() -> usize {
    POOL_F32.bytes.load(Ordering::Relaxed) + POOL_F64.bytes.load(Ordering::Relaxed)
}

/// Frees every idle buffer.
pub fn clear() {
    POOL_F32
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    POOL_F32.bytes.store(0, Ordering::Relaxed);
    POOL_F64
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    POOL_F64.bytes.store(0, Ordering::Relaxed);
}

/// The pool for `T`, found by type (f32 and f64 only).
fn pool_of<T: Real>() -> Option<&'static BufferPool<T>> {
    use std::any::Any;
    let f32_pool: &'static dyn Any = &*POOL_F32;
    let f64_pool: &'static dyn Any = &*POOL_F64;
    f32_pool
        .downcast_ref::<BufferPool<T>>()
        .or_else(|| f64_pool.downcast_ref::<BufferPool<T>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_by_length_and_evicts_the_least_recently_used_length() {
        // Lengths unique to this test, so other tests' buffers do not interfere.
        let (a, b) = (1_000_003usize, 1_000_033usize);
        let v: Vec<f64> = take(a);
        let ptr = v.as_ptr();
        give(v);
        let again: Vec<f64> = take(a);
        assert_eq!(again.as_ptr(), ptr, "a returned buffer is handed out again");
        give(again);
        // Fill the pool past its cap with another length: the older length goes first.
        let many = MAX_POOLED_BYTES / (b * 8) + 2;
        let bufs: Vec<Vec<f64>> = (0..many).map(|_| take(b)).collect();
        bufs.into_iter().for_each(give);
        assert!(idle_bytes() <= MAX_POOLED_BYTES);
        let free = POOL_F64.free.lock().unwrap();
        assert!(
            free.get(&a).is_none_or(|c| c.buffers.is_empty()),
            "the least recently used length was evicted"
        );
        assert!(!free[&b].buffers.is_empty());
    }
}
