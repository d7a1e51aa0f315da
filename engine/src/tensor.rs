//! The tensor: a shape, a shared buffer, and (when it was computed from tensors that require
//! gradients) the node of the tape that made it.

use crate::autograd::{self, BackwardOp, Node};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::checked_alloc;
use crate::rng::Rng;
use crate::storage::{DType, Device, Element, Storage};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An n-dimensional, row-major array of `f32` or `f64`, on a device, that records how it was
/// computed so gradients can flow back through it.
///
/// Cloning is cheap (a reference count); clones are the same tensor, with the same gradient.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) shape: Vec<usize>,
    /// The buffer, shared by reshapes and detaches; replaced whole by [`Tensor::assign`].
    pub(crate) storage: RwLock<Arc<Storage>>,
    pub(crate) requires_grad: AtomicBool,
    /// The tape node that computed this tensor; `None` for leaves and constants.
    pub(crate) grad_fn: Option<Arc<Node>>,
    /// Gradient accumulated by [`Tensor::backward`] (leaves only).
    pub(crate) grad: Mutex<Option<Tensor>>,
}

fn check_len(op: &'static str, shape: &[usize], len: usize) -> Result<()> {
    let want = crate::limits::checked_numel(op, shape)?;
    if want != len {
        return Err(Error::shape(
            op,
            format!("shape {shape:?} holds {want} elements but {len} were given"),
        ));
    }
    Ok(())
}

impl Tensor {
    // ---- construction -------------------------------------------------------------------

    pub(crate) fn new_leaf(storage: Storage, shape: Vec<usize>) -> Tensor {
        Tensor::build(Arc::new(storage), shape, None, false)
    }

    fn build(
        storage: Arc<Storage>,
        shape: Vec<usize>,
        grad_fn: Option<Arc<Node>>,
        requires_grad: bool,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            storage: RwLock::new(storage),
            requires_grad: AtomicBool::new(requires_grad),
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// The result of an op: records a tape node when gradients are enabled and some input
    /// requires them; otherwise a plain constant.
    pub(crate) fn from_op(
        storage: Storage,
        shape: Vec<usize>,
        op: impl BackwardOp + 'static,
        inputs: Vec<Tensor>,
    ) -> Tensor {
        Tensor::from_op_shared(Arc::new(storage), shape, op, inputs)
    }

    pub(crate) fn from_op_shared(
        storage: Arc<Storage>,
        shape: Vec<usize>,
        op: impl BackwardOp + 'static,
        inputs: Vec<Tensor>,
    ) -> Tensor {
        debug_assert_eq!(
            storage.len(),
            shape.iter().product::<usize>(),
            "{}",
            op.name()
        );
        if autograd::is_grad_enabled() && inputs.iter().any(Tensor::requires_grad) {
            let node = Node::new(Box::new(op), inputs);
            Tensor::build(storage, shape, Some(Arc::new(node)), true)
        } else {
            Tensor::build(storage, shape, None, false)
        }
    }

    /// A tensor holding `values` with `shape` (row-major). The element type follows `T`.
    pub fn from_vec<T: Element>(values: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        check_len("from_vec", shape, values.len())?;
        Ok(Tensor::new_leaf(T::into_storage(values), shape.to_vec()))
    }

    /// A tensor from f64 values, stored in `dtype`.
    pub fn from_f64s(values: &[f64], shape: &[usize], dtype: DType) -> Result<Tensor> {
        check_len("from_f64s", shape, values.len())?;
        Ok(Tensor::new_leaf(
            Storage::from_f64s(values.iter().copied(), dtype),
            shape.to_vec(),
        ))
    }

    /// A zero-dimensional tensor.
    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Tensor::new_leaf(Storage::full(1, value, dtype), vec![])
    }

    /// `value` everywhere. The shape is checked first: a size that overflows or a buffer over
    /// the allocation limit ([`crate::limits`]) is an error, not an abort.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = checked_alloc("full", shape, dtype, Device::Cpu)?;
        Ok(Tensor::new_leaf(
            Storage::full(n, value, dtype),
            shape.to_vec(),
        ))
    }

    /// Zeros of `shape`, in host memory.
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype)
    }

    /// Ones of `shape`, in host memory.
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype)
    }

    /// `value` everywhere, on `device` (made there: no upload).
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        let n = checked_alloc("full_on", shape, dtype, device)?;
        Ok(Tensor::new_leaf(
            Storage::full_on(n, value, dtype, device)?,
            shape.to_vec(),
        ))
    }

    /// `value` with this tensor's shape, dtype and device.
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full_on(self.shape(), value, self.dtype(), self.device())
            .expect("this tensor's own device and dtype go together")
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }

    /// `start, start + step, …` below `end` (above it for a negative step), as a 1-D tensor.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::argument(
                "arange",
                format!(
                    "start {start}, end {end}, step {step}: need finite values and a non-zero step"
                ),
            ));
        }
        // The count as f64 first: a range of 1e30 steps must be refused, not saturated.
        let count = ((end - start) / step).ceil().max(0.0);
        let n = if count < usize::MAX as f64 {
            count as usize
        } else {
            usize::MAX
        };
        checked_alloc("arange", &[n], dtype, Device::Cpu)?;
        let values = (0..n).map(|i| start + i as f64 * step);
        Ok(Tensor::new_leaf(Storage::from_f64s(values, dtype), vec![n]))
    }

    /// Independent N(mean, std²) values from `rng`.
    pub fn randn(
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let n = checked_alloc("randn", shape, dtype, Device::Cpu)?;
        let values = (0..n).map(|_| mean + std * rng.normal());
        Ok(Tensor::new_leaf(
            Storage::from_f64s(values, dtype),
            shape.to_vec(),
        ))
    }

    /// Independent U(low, high) values from `rng`.
    pub fn rand_uniform(
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let n = checked_alloc("rand_uniform", shape, dtype, Device::Cpu)?;
        let values = (0..n).map(|_| low + (high - low) * rng.uniform());
        Ok(Tensor::new_leaf(
            Storage::from_f64s(values, dtype),
            shape.to_vec(),
        ))
    }

    // ---- inspection ---------------------------------------------------------------------

    /// The size of each axis, outermost first (`[]` for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    /// Number of elements, the product of the sizes (1 for a scalar, 0 if any size is 0).
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage().dtype()
    }
    /// Where the values live; ops need all their inputs on one device.
    pub fn device(&self) -> Device {
        self.storage().device()
    }
    /// A number unique to this tensor for the life of the process.
    pub fn id(&self) -> u64 {
        self.0.id
    }
    /// The size of axis `axis`, which may count from the end when negative.
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = self.axis("dim", axis)?;
        Ok(self.0.shape[a])
    }
    /// Resolves a possibly negative axis against this tensor's rank.
    pub(crate) fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank {
            return Err(Error::argument(
                op,
                format!("axis {axis} is out of range for shape {:?}", self.shape()),
            ));
        }
        Ok(a as usize)
    }

    /// The buffer (a cheap shared handle).
    pub fn storage(&self) -> Arc<Storage> {
        self.0
            .storage
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The values, converted to f64.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        self.storage().to_f64_vec()
    }

    /// The values as f32 (converted if stored as f64).
    pub fn to_vec_f32(&self) -> Vec<f32> {
        self.storage().to_f32_vec()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("needs exactly one element, the shape is {:?}", self.shape()),
            ));
        }
        Ok(self.to_vec_f64()[0])
    }

    // ---- autodiff state -----------------------------------------------------------------

    /// Whether gradients flow to this tensor: a leaf marked by [`Tensor::set_requires_grad`],
    /// or a tensor computed, with recording on, from at least one such tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Whether this tensor was made by the user rather than computed by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    /// Marks a leaf as a variable whose gradient [`Tensor::backward`] should accumulate.
    /// Computed tensors get their flag from their inputs; asking to change it is an error.
    pub fn set_requires_grad(&self, requires: bool) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::autograd("set_requires_grad", "only leaf tensors can be marked; use detach() to cut a computed tensor from its graph"));
        }
        self.0.requires_grad.store(requires, Ordering::Relaxed);
        Ok(())
    }

    /// Builder form of [`set_requires_grad(true)`](Self::set_requires_grad) for freshly made
    /// leaves; on a computed tensor it detaches first.
    pub fn requires_grad_(self) -> Tensor {
        let leaf = if self.is_leaf() { self } else { self.detach() };
        leaf.0.requires_grad.store(true, Ordering::Relaxed);
        leaf
    }

    /// The same values, cut from the graph: a leaf that does not require gradients.
    pub fn detach(&self) -> Tensor {
        Tensor::build(self.storage(), self.0.shape.clone(), None, false)
    }

    /// The gradient accumulated by `backward`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn set_grad(&self, grad: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
    }

    /// Replaces this tensor's values in place (an optimizer step). Shape and dtype must match.
    /// Any recorded graph that read the old values keeps reading the tensor, so assign only
    /// between steps, as PyTorch's optimizers do.
    pub fn assign(&self, values: &Tensor) -> Result<()> {
        if values.shape() != self.shape() {
            return Err(Error::shape(
                "assign",
                format!(
                    "values of shape {:?} into a tensor of shape {:?}",
                    values.shape(),
                    self.shape()
                ),
            ));
        }
        self.same_device("assign", values)?;
        if values.dtype() != self.dtype() {
            return Err(Error::new(
                "assign",
                ErrorKind::DType,
                format!("{} values into a {} tensor", values.dtype(), self.dtype()),
            ));
        }
        *self.0.storage.write().unwrap_or_else(|e| e.into_inner()) = values.storage();
        Ok(())
    }

    /// Converts a leaf's values to `dtype` in place, so that a model built in f32 can be checked
    /// against finite differences in f64 without rebuilding it. Computed tensors refuse: their
    /// recorded graph expects the old element type.
    pub fn cast_in_place(&self, dtype: DType) -> Result<()> {
        if self.grad_fn().is_some() {
            return Err(Error::argument(
                "cast_in_place",
                "only leaves (parameters, buffers) can change element type",
            ));
        }
        if dtype != self.dtype() {
            checked_alloc("cast_in_place", self.shape(), dtype, self.device())?;
            if self.device() == Device::Gpu {
                return Err(Error::new(
                    "cast_in_place",
                    ErrorKind::DType,
                    format!("GPU tensors hold f32 only, not {dtype}"),
                ));
            }
            let values = Storage::from_f64s(self.to_vec_f64(), dtype);
            *self.0.storage.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(values);
        }
        Ok(())
    }

    /// Moves a leaf's values to `device` in place, so that a model built on the CPU (its
    /// parameters and buffers) can train on the GPU without rebuilding it. Computed tensors
    /// refuse, like [`Tensor::cast_in_place`]; a gradient already accumulated is dropped.
    pub fn move_in_place(&self, device: Device) -> Result<()> {
        if self.grad_fn().is_some() {
            return Err(Error::argument(
                "move_in_place",
                "only leaves (parameters, buffers) can change device; use to(device)",
            ));
        }
        if device != self.device() {
            let storage = self.storage();
            let moved = match device {
                Device::Gpu => storage.to_gpu()?,
                Device::Cpu => storage.to_host(),
            };
            *self.0.storage.write().unwrap_or_else(|e| e.into_inner()) = moved;
            self.zero_grad();
        }
        Ok(())
    }

    /// Updates the values in place through `f` (an optimizer's fused step). Copy-on-write: a
    /// detached tensor or reshape that shares the buffer keeps the old values. `T` must be the
    /// tensor's element type. Like [`Tensor::assign`], use it between steps.
    pub fn update_values<T: Element>(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        let mut guard = self.0.storage.write().unwrap_or_else(|e| e.into_inner());
        if guard.device() == Device::Gpu {
            return Err(Error::new(
                "update_values",
                ErrorKind::Device,
                "the values are on the GPU; update them there with update_on_gpu",
            ));
        }
        let dtype = guard.dtype();
        let values = T::slice_mut(Arc::make_mut(&mut guard)).ok_or_else(|| {
            Error::new(
                "update_values",
                ErrorKind::DType,
                format!("the tensor holds {dtype}, not {}", T::DTYPE),
            )
        })?;
        f(values);
        Ok(())
    }

    /// Updates GPU-resident values in place through `f`, which records kernels that write the
    /// buffer (an optimizer's fused step). Copy-on-write, like [`Tensor::update_values`]: a
    /// tensor sharing the buffer gets its own copy first. Use it between steps.
    #[cfg(feature = "gpu")]
    pub fn update_on_gpu<R>(
        &self,
        f: impl FnOnce(&ferrograd_kernels::gpu::GpuBuffer) -> R,
    ) -> Result<R> {
        let mut guard = self.0.storage.write().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&guard) > 1 {
            let copy = (**guard).clone();
            *guard = Arc::new(copy);
        }
        match &**guard {
            Storage::Gpu(b) => Ok(f(b)),
            _ => Err(Error::new(
                "update_on_gpu",
                ErrorKind::Device,
                format!("the tensor is on the {}, not the GPU", guard.device()),
            )),
        }
    }

    /// The values as a slice of `T`, for reading without a copy; `None` if `T` is not the
    /// element type.
    pub fn with_values<T: Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> Option<R> {
        let storage = self.storage().to_host();
        T::slice(&storage).map(f)
    }

    pub(crate) fn grad_fn(&self) -> Option<&Arc<Node>> {
        self.0.grad_fn.as_ref()
    }

    /// Name of the op that computed this tensor (`None` for leaves).
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.grad_fn.as_ref().map(|n| n.op.name())
    }

    pub(crate) fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        let (a, b) = (self.device(), other.device());
        if a != b {
            return Err(Error::new(
                op,
                ErrorKind::Device,
                format!(
                    "{:?} is on the {a} but {:?} is on the {b}; move one with .to(device)",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn same_dtype(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::new(
                op,
                ErrorKind::DType,
                format!(
                    "{:?} is {} but {:?} is {}",
                    self.shape(),
                    self.dtype(),
                    other.shape(),
                    other.dtype()
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.to_vec_f64();
        const SHOW: usize = 8;
        write!(
            f,
            "Tensor(shape={:?}, dtype={}, device={}, values=[",
            self.shape(),
            self.dtype(),
            self.device()
        )?;
        for (i, v) in values.iter().take(SHOW).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v:.6}")?;
        }
        if values.len() > SHOW {
            write!(f, ", … {} more", values.len() - SHOW)?;
        }
        write!(f, "]")?;
        if let Some(op) = self.op_name() {
            write!(f, ", grad_fn={op}")?;
        } else if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, ")")
    }
}
