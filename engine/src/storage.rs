//! Where a tensor's values live, and in which element type.

use std::fmt;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Where a tensor's buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}

/// A flat, row-major buffer of values.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A dropped buffer goes back to the kernels' pool, so the next step's op of the same size
/// reuses it instead of faulting in fresh pages.
impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::F32(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
            Storage::F64(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
        }
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len` copies of `value` in `dtype`.
    pub fn full(len: usize, value: f64, dtype: DType) -> Storage {
        match dtype {
            DType::F32 => Storage::F32(vec![value as f32; len]),
            DType::F64 => Storage::F64(vec![value; len]),
        }
    }
    /// Values converted from f64.
    pub fn from_f64s(values: impl IntoIterator<Item = f64>, dtype: DType) -> Storage {
        let it = values.into_iter();
        match dtype {
            DType::F32 => Storage::F32(it.map(|v| v as f32).collect()),
            DType::F64 => Storage::F64(it.collect()),
        }
    }
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Storage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Storage::F64(v) => v.clone(),
        }
    }
}

/// Element types a tensor can be built from.
pub trait Element: ferrograd_kernels::Real {
    const DTYPE: DType;
    fn into_storage(values: Vec<Self>) -> Storage;
    fn slice(storage: &Storage) -> Option<&[Self]>;
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn into_storage(values: Vec<Self>) -> Storage {
        Storage::F32(values)
    }
    fn slice(storage: &Storage) -> Option<&[Self]> {
        match storage {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]> {
        match storage {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn into_storage(values: Vec<Self>) -> Storage {
        Storage::F64(values)
    }
    fn slice(storage: &Storage) -> Option<&[Self]> {
        match storage {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]> {
        match storage {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// Run a generic expression on a storage's slice, keeping its element type:
/// `map_storage!(&storage, v => kernels::unary(op, v))` gives a new `Storage`.
#[macro_export]
#[doc(hidden)]
macro_rules! map_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::Storage::F32($v) => $crate::Storage::F32($body),
            $crate::Storage::F64($v) => $crate::Storage::F64($body),
        }
    };
}

/// Run a generic expression on a storage's slice, for a result of any one type.
#[macro_export]
#[doc(hidden)]
macro_rules! with_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::Storage::F32($v) => $body,
            $crate::Storage::F64($v) => $body,
        }
    };
}
