//! Raw compute on flat, row-major buffers.
//!
//! This crate knows nothing of tensors, graphs or gradients: every function takes slices and
//! shapes and returns (or fills) a buffer. The engine builds differentiable ops on top of these.
//! CPU kernels are generic over [`Real`] (`f32` and `f64`) and parallel with rayon where the
//! work is large enough to pay for the fork.

// Every public item is documented: readers learn from this source, and CI turns the
// warning into an error (clippy -D warnings).
#![warn(missing_docs)]

pub mod channel;
pub mod conv;
pub mod elementwise;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod real;
pub mod reduce;

pub use real::Real;

/// Below this many elements a kernel runs on the calling thread: forking costs more.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Number of elements of a shape (1 for a scalar's empty shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Merges adjacent axes that two strided views both traverse contiguously, dropping size-1
/// axes: [N, C, H, W] read against [1, C, 1, 1] becomes [N, C, H·W], so the innermost run is
/// as long as it can be. Returns (size, [stride₀, stride₁]) per merged axis, outermost first.
pub fn merge_axes(shape: &[usize], strides: [&[usize]; 2]) -> Vec<(usize, [usize; 2])> {
    let mut dims: Vec<(usize, [usize; 2])> = Vec::with_capacity(shape.len());
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let st = [strides[0][d], strides[1][d]];
        match dims.last_mut() {
            Some((outer, os)) if os[0] == st[0] * size && os[1] == st[1] * size => {
                *outer *= size;
                *os = st;
            }
            _ => dims.push((size, st)),
        }
    }
    dims
}

/// Row-major strides of a contiguous buffer of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

/// Makes this thread's floating-point unit treat subnormal numbers as zero, on input and on
/// output (x86-64's FTZ and DAZ bits; elsewhere a no-op). Arithmetic on subnormals is many
/// times slower, and a training run whose weights decay toward zero can slow down epoch after
/// epoch because of them. Results change only where values fall below f32's normal range
/// (about 1.2e-38). Returns whether the mode was set.
pub fn flush_subnormals_on_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register only; the
        // bits set are the documented flush modes, which every x86-64 processor supports.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`flush_subnormals_on_this_thread`] on the calling thread and on every thread of rayon's
/// global pool, where the kernels run. `ferrograd train` and `eval` call it; a program that
/// embeds the engine for training can too.
pub fn flush_subnormals() -> bool {
    let here = flush_subnormals_on_this_thread();
    rayon::broadcast(|_| flush_subnormals_on_this_thread());
    here
}

#[cfg(test)]
mod tests {
    #[test]
    fn flushing_turns_subnormal_results_into_zero() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let before = std::hint::black_box(tiny) / std::hint::black_box(4.0f32);
        assert!(before > 0.0, "subnormal results exist before flushing");
        std::thread::spawn(move || {
            if super::flush_subnormals_on_this_thread() {
                assert_eq!(
                    std::hint::black_box(tiny) / std::hint::black_box(4.0f32),
                    0.0
                );
            }
        })
        .join()
        .unwrap();
    }
}
