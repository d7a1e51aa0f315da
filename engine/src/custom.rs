//! Primitives defined outside the engine.
//!
//! A [`CustomOp`] brings its own kernel, on the CPU and optionally on the GPU (a WGSL compute
//! shader), and its derivative rule written with engine ops, exactly as the built-in
//! primitives are made: the rule is recorded like any other computation, so the op is
//! differentiable to any order and [`crate::gradcheck`] checks it like a built-in.
//!
//! ```
//! use ferrograd_engine::{grad, CustomOp, DType, Element, Result, Tensor};
//!
//! /// y = x³, with its derivative 3x² written in engine ops.
//! struct Cube;
//!
//! impl CustomOp for Cube {
//!     fn name(&self) -> &'static str {
//!         "cube"
//!     }
//!     fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
//!         Ok(inputs[0].to_vec())
//!     }
//!     fn cpu_forward<T: Element>(&self, inputs: &[&[T]], out: &mut [T]) -> Result<()> {
//!         for (o, &x) in out.iter_mut().zip(inputs[0]) {
//!             *o = x * x * x;
//!         }
//!         Ok(())
//!     }
//!     fn backward(&self, x: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
//!         Ok(vec![Some(g.mul(&x[0].mul(&x[0])?.mul_scalar(3.0)?)?)])
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let x = Tensor::scalar(2.0, DType::F64).requires_grad_();
//! let y = Tensor::custom(Cube, &[&x])?;
//! let dy = grad(&[&y], &[&x], None, true)?.remove(0); // 3x² = 12
//! let d2y = grad(&[&dy], &[&x], None, false)?.remove(0); // 6x = 12: the rule was recorded
//! assert_eq!((y.item()?, dy.item()?, d2y.item()?), (8.0, 12.0, 12.0));
//! # Ok(()) }
//! ```

use crate::autograd::BackwardOp;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::checked_alloc;
use crate::storage::{DType, Device, Element, Storage};
use crate::tensor::Tensor;

/// A user-defined primitive: a forward kernel and a derivative rule.
///
/// All inputs of one application share a device and an element type; on the CPU the kernel
/// runs generically in that type (f32 or f64), on the GPU (f32) through [`CustomOp::wgsl`].
pub trait CustomOp: Send + Sync + 'static {
    /// The op's name, in errors and [`Tensor::op_name`].
    fn name(&self) -> &'static str;

    /// The shape of the output for inputs of these shapes, or an error saying why they do not
    /// fit (it is checked before anything is computed).
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;

    /// The output values: `inputs` are the inputs' values (row-major), `out` has as many
    /// elements as [`CustomOp::output_shape`] says and must be filled completely.
    fn cpu_forward<T: Element>(&self, inputs: &[&[T]], out: &mut [T]) -> Result<()>;

    /// The kernel for GPU inputs; `None` (the default) makes a GPU input an error that says
    /// so. See [`WgslKernel`] for the bindings it gets.
    fn wgsl(&self) -> Option<WgslKernel> {
        None
    }

    /// The derivative rule: the gradients of the loss with respect to each input (`None` for
    /// an input that gets none), given the inputs, this op's output (a tensor of the graph, so
    /// a rule may read it) and the gradient with respect to the output. Written with engine
    /// ops, custom ones included, so that it is recorded and can be differentiated again.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad_output: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;
}

/// A custom op's GPU kernel: a WGSL compute shader whose entry point runs one invocation per
/// output element, over ⌈n / 256⌉ workgroups of `@workgroup_size(256)` (folded into a second
/// grid dimension past 65,535 groups: the flat index is `gid.x + gid.y * nwg.x * 256u`).
///
/// Bindings, all in group 0: `@binding(0) var<storage, read> params: array<u32>` holds n (the
/// output's length) followed by [`WgslKernel::params`]; bindings 1, 2, … are the inputs in
/// order (`var<storage, read> … : array<f32>`), and the one after them the output
/// (`var<storage, read_write> … : array<f32>`). A shader that does not compile is an `Err`
/// with the compiler's message.
#[derive(Clone, Debug)]
pub struct WgslKernel {
    /// The WGSL source; compiled once per distinct source.
    pub source: String,
    /// The name of its `@compute` entry point.
    pub entry: &'static str,
    /// Extra words after n at binding 0 (an `f32` goes as `value.to_bits()`).
    pub params: Vec<u32>,
}

/// The engine's node for a custom op: the derivative rule is the op's own.
struct CustomNode<O>(O);

impl<O: CustomOp> BackwardOp for CustomNode<O> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        self.0.backward(inputs, output, g)
    }
}

impl Tensor {
    /// Applies a user-defined primitive to `inputs` and records it on the tape (see
    /// [`CustomOp`]).
    pub fn custom<O: CustomOp>(op: O, inputs: &[&Tensor]) -> Result<Tensor> {
        let name = op.name();
        let first = inputs
            .first()
            .ok_or_else(|| Error::argument(name, "a custom op needs at least one input"))?;
        for t in &inputs[1..] {
            first.same_device(name, t)?;
            first.same_dtype(name, t)?;
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        let shape = op.output_shape(&shapes)?;
        let (dtype, device) = (first.dtype(), first.device());
        let n = checked_alloc(name, &shape, dtype, device)?;
        let storages: Vec<_> = inputs.iter().map(|t| t.storage()).collect();
        let out = match (device, dtype) {
            (Device::Cpu, DType::F32) => cpu::<O, f32>(&op, &storages, n)?,
            (Device::Cpu, DType::F64) => cpu::<O, f64>(&op, &storages, n)?,
            (Device::Gpu, _) => gpu(&op, &storages, n)?,
        };
        Ok(Tensor::from_op(
            out,
            shape,
            CustomNode(op),
            inputs.iter().map(|&t| t.clone()).collect(),
        ))
    }
}

fn cpu<O: CustomOp, T: Element>(
    op: &O,
    inputs: &[std::sync::Arc<Storage>],
    n: usize,
) -> Result<Storage> {
    let slices: Vec<&[T]> = inputs
        .iter()
        .map(|s| {
            T::slice(s).ok_or_else(|| {
                Error::new(
                    op.name(),
                    ErrorKind::DType,
                    "inputs of different element types",
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut out = vec![T::ZERO; n];
    op.cpu_forward(&slices, &mut out)?;
    Ok(T::into_storage(out))
}

#[cfg(feature = "gpu")]
fn gpu<O: CustomOp>(op: &O, inputs: &[std::sync::Arc<Storage>], n: usize) -> Result<Storage> {
    use ferrograd_kernels::gpu::{grid_1d, u32_of};
    let name = op.name();
    let kernel = op.wgsl().ok_or_else(|| {
        Error::new(
            name,
            ErrorKind::Device,
            "this custom op has no GPU kernel (CustomOp::wgsl): move its inputs to the CPU",
        )
    })?;
    let gpu = crate::backend::wgpu::open();
    let shader = gpu
        .custom_shader(name, &kernel.source, kernel.entry)
        .map_err(|why| Error::argument(name, why))?;
    let buffers: Vec<&ferrograd_kernels::gpu::GpuBuffer> = inputs
        .iter()
        .map(|s| match &**s {
            Storage::Gpu(b) => Ok(b),
            _ => Err(Error::new(
                name,
                ErrorKind::Device,
                "inputs on different devices",
            )),
        })
        .collect::<Result<_>>()?;
    let out = gpu.alloc(n);
    if n > 0 {
        let mut params = vec![u32_of(n)];
        params.extend(&kernel.params);
        let mut bound = buffers;
        bound.push(&out);
        gpu.dispatch(shader, kernel.entry, &params, &bound, grid_1d(n));
    }
    Ok(Storage::Gpu(out))
}

#[cfg(not(feature = "gpu"))]
fn gpu<O: CustomOp>(op: &O, _: &[std::sync::Arc<Storage>], _: usize) -> Result<Storage> {
    Err(Error::new(
        op.name(),
        ErrorKind::Device,
        "this build has no GPU support",
    ))
}
