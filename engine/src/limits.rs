//! Sizes checked before anything is allocated.
//!
//! Every op that makes a new shape computes its element count with checked arithmetic and asks
//! [`checked_alloc`] before it allocates. A product that overflows `usize`, or a buffer larger
//! than the allocation limit, is an `Err` naming the op and the shape, so that a wrong size (a
//! flag with an extra zero, a corrupted checkpoint) is an error message rather than an abort
//! with "capacity overflow" or "memory allocation failed".
//!
//! The limit is per buffer: 4 GiB by default, `FERROGRAD_MAX_ALLOC` (bytes, or with a `K`, `M`
//! or `G` suffix: `FERROGRAD_MAX_ALLOC=16G`) when set, or [`set_allocation_limit`]. On the GPU
//! a buffer must also fit the adapter's largest storage binding.

use crate::error::{Error, Result};
use crate::storage::{DType, Device};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default limit on one buffer: 4 GiB.
pub const DEFAULT_ALLOCATION_LIMIT: usize = 4 << 30;

/// 0 until first read; then the limit in bytes.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Parses `16G`, `512M`, `64K` or a plain number of bytes.
fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let (digits, scale) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 1usize << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(scale)
}

/// The largest buffer, in bytes, that one op may allocate.
pub fn allocation_limit() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let limit = std::env::var("FERROGRAD_MAX_ALLOC")
                .ok()
                .and_then(|v| parse_bytes(&v))
                .filter(|&b| b > 0)
                .unwrap_or(DEFAULT_ALLOCATION_LIMIT);
            LIMIT.store(limit, Ordering::Relaxed);
            limit
        }
        limit => limit,
    }
}

/// Sets the largest buffer, in bytes, that one op may allocate (for the whole process).
/// Zero restores the default.
pub fn set_allocation_limit(bytes: usize) {
    LIMIT.store(
        if bytes == 0 {
            DEFAULT_ALLOCATION_LIMIT
        } else {
            bytes
        },
        Ordering::Relaxed,
    );
}

/// The number of elements of `shape`, or an error naming `op` if the shape is too large to
/// address. As in PyTorch, a zero does not excuse the other sizes: the product of the nonzero
/// sizes must fit a `usize` too, so that any product of some of a tensor's sizes (a stride,
/// the rows of a reduction) can be computed without overflow, even for an empty tensor.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let addressable = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)));
    match addressable {
        Some(n) if !shape.contains(&0) => Ok(n),
        Some(_) => Ok(0),
        None => Err(Error::shape(
            op,
            format!("shape {shape:?} has more elements than a usize can count"),
        )),
    }
}

/// Bytes of one element.
fn element_bytes(dtype: DType) -> usize {
    match dtype {
        DType::F32 => 4,
        DType::F64 => 8,
    }
}

/// The number of elements of a buffer of `shape` about to be allocated by `op` on `device`,
/// checked against overflow, the allocation limit, and (on the GPU) the adapter's limit.
pub fn checked_alloc(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    device: Device,
) -> Result<usize> {
    let n = checked_numel(op, shape)?;
    check_buffer(op, &format!("shape {shape:?}"), Some(n), dtype, device)?;
    Ok(n)
}

/// Checks a buffer of `elements` (`None`: the count overflowed) that `op` is about to
/// allocate, described by `what` in the error ("shape [2, 3]", "the im2col buffer").
pub fn check_buffer(
    op: &'static str,
    what: &str,
    elements: Option<usize>,
    dtype: DType,
    device: Device,
) -> Result<()> {
    let too_big = |message: String| Err(Error::new(op, crate::ErrorKind::Allocation, message));
    let Some(n) = elements else {
        return too_big(format!("{what} has more elements than a usize can count"));
    };
    let bytes = n.saturating_mul(element_bytes(dtype));
    let limit = allocation_limit();
    if bytes > limit {
        return too_big(format!(
            "{what} needs {} of {dtype}, over the allocation limit of {} \
             (FERROGRAD_MAX_ALLOC or set_allocation_limit raise it)",
            describe_bytes(bytes),
            describe_bytes(limit)
        ));
    }
    if device == Device::Gpu {
        // A GPU buffer must fit one storage binding, and its indices the shaders' u32.
        let max_words = crate::backend::gpu_status::max_buffer_words();
        if n > max_words {
            return too_big(format!(
                "{what} ({n} values) is larger than the GPU's largest buffer ({max_words} values)"
            ));
        }
    }
    Ok(())
}

/// "3.0 GiB", "512.0 MiB", "800 B".
fn describe_bytes(bytes: usize) -> String {
    const UNITS: [(&str, f64); 3] = [
        ("GiB", (1u64 << 30) as f64),
        ("MiB", (1u64 << 20) as f64),
        ("KiB", 1024.0),
    ];
    for (name, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.1} {name}", bytes as f64 / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("16G"), Some(16 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes(" 4096 "), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999999999G"), None);
    }

    #[test]
    fn overflowing_and_oversized_shapes_are_errors_naming_the_op() {
        let e = checked_numel("reshape", &[(1 << 63) + 3, 2]).unwrap_err();
        assert!(e.to_string().starts_with("reshape: shape"), "{e}");
        let e = checked_alloc("zeros", &[1 << 40], DType::F32, Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("allocation limit"), "{e}");
        assert_eq!(
            checked_alloc("zeros", &[2, 0, 3], DType::F64, Device::Cpu),
            Ok(0)
        );
    }
}
