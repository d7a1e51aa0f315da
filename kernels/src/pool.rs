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

/// Idle buffers of one element type, by length.
pub struct BufferPool<T> {
    free: Mutex<HashMap<usize, Vec<Vec<T>>>>,
    bytes: AtomicUsize,
}

impl<T> BufferPool<T> {
    fn new() -> Self {
        BufferPool {
            free: Mutex::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
        }
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

/// A buffer of `len` zeros.
pub fn take_zeroed<T: Real>(len: usize) -> Vec<T> {
    match take_pooled::<T>(len) {
        Some(mut v) => {
            v.iter_mut().for_each(|x| *x = T::ZERO);
            v
        }
        None => vec![T::ZERO; len],
    }
}

fn take_pooled<T: Real>(len: usize) -> Option<Vec<T>> {
    if byte_len::<T>(len) < MIN_POOLED_BYTES {
        return None;
    }
    let pool = pool_of::<T>()?;
    let v = pool
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&len)?
        .pop()?;
    pool.bytes.fetch_sub(byte_len::<T>(len), Ordering::Relaxed);
    Some(v)
}

/// Hands a buffer back for reuse (or frees it, if small or the pool is full).
pub fn give<T: Real>(v: Vec<T>) {
    let bytes = byte_len::<T>(v.len());
    if bytes < MIN_POOLED_BYTES || v.capacity() != v.len() {
        return;
    }
    let Some(pool) = pool_of::<T>() else { return };
    if pool.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > MAX_POOLED_BYTES {
        pool.bytes.fetch_sub(bytes, Ordering::Relaxed);
        return;
    }
    pool.free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(v.len())
        .or_default()
        .push(v);
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
