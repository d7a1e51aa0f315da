//! Ops that move values without arithmetic: reshape, permute, broadcast, and the flat
//! gather/scatter pair behind slicing, padding, concatenation and index selection.
//!
//! Every op here is linear, so each derivative rule is another op of this file (its adjoint):
//! reshape ↔ reshape, permute ↔ inverse permute, broadcast_to ↔ sum_to, gather ↔ scatter-add.

use crate::autograd::BackwardOp;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::indices::Indices;
use crate::limits::{checked_alloc, checked_numel};
use crate::storage::Device;
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::{contiguous_strides, elementwise::broadcast_shapes, numel};
use std::borrow::Borrow;
use std::sync::Arc;

/// The identity, as a node of its own: what an op returns when it has nothing to change (a
/// reshape to the same shape, the identity permutation, a broadcast to the same shape, a
/// concatenation of one tensor, …). Returning the input itself would make a gradient with
/// respect to the op's output count every use of the input: with v = x.reshape(x.shape())
/// and L = Σ v·x, ∂L/∂v is x, but ∂L/∂x is 2x.
struct Identity {
    name: &'static str,
}
impl BackwardOp for Identity {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.clone())])
    }
}

impl Tensor {
    /// The same values (the same buffer, no copy) as a new tensor recorded as `op`'s output.
    pub(crate) fn identity(&self, op: &'static str) -> Tensor {
        Tensor::from_op_shared(
            self.storage(),
            self.shape().to_vec(),
            Identity { name: op },
            vec![self.clone()],
        )
    }
}

struct Reshape {
    in_shape: Vec<usize>,
}
impl BackwardOp for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(&self.in_shape)?)])
    }
}

struct Permute {
    perm: Vec<usize>,
}
impl BackwardOp for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    /// The inverse permutation puts every axis back.
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let mut inverse = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(vec![Some(g.permute(&inverse)?)])
    }
}

struct ToDevice {
    from: Device,
}
impl BackwardOp for ToDevice {
    fn name(&self) -> &'static str {
        "to_device"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to(self.from)?)])
    }
}

struct BroadcastTo {
    in_shape: Vec<usize>,
}
impl BackwardOp for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.sum_to(&self.in_shape)?)])
    }
}

pub(crate) use crate::backend::Planes;

/// out[i] = x.flat[idx[i]].
struct GatherFlat {
    idx: Indices,
    in_shape: Vec<usize>,
    planes: Option<Planes>,
}
impl BackwardOp for GatherFlat {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.scatter_add_flat_trusted(
            self.idx.clone(),
            &self.in_shape,
            self.planes,
        ))])
    }
}

/// out = 0; out.flat[idx[i]] += x.flat[i].
struct ScatterAddFlat {
    idx: Indices,
    in_shape: Vec<usize>,
    planes: Option<Planes>,
}
impl BackwardOp for ScatterAddFlat {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.gather_flat_trusted(
            self.idx.clone(),
            &self.in_shape,
            self.planes,
        ))])
    }
}

/// Steps the multi-index `pos` to the next position of `sizes` in row-major order (an
/// odometer: the last axis turns fastest), wrapping to all zeros after the last.
fn next_position(pos: &mut [usize], sizes: &[usize]) {
    for d in (0..sizes.len()).rev() {
        pos[d] += 1;
        if pos[d] < sizes[d] {
            return;
        }
        pos[d] = 0;
    }
}

/// Flat indices, in a buffer of `shape`, of the box starting at `starts` with size `region`,
/// in row-major order of the box. Along the last axis the indices run on by one, so they are
/// written a row at a time, with the odometer turning once per row rather than once per index.
fn box_indices(shape: &[usize], starts: &[usize], region: &[usize]) -> Vec<usize> {
    let n = numel(region);
    let Some((&row, outer)) = region.split_last() else {
        return vec![0; n];
    };
    if n == 0 {
        return Vec::new();
    }
    let strides = contiguous_strides(shape);
    let mut out = Vec::with_capacity(n);
    let mut pos = vec![0usize; outer.len()];
    for _ in 0..n / row {
        let first: usize = pos
            .iter()
            .zip(starts)
            .zip(&strides)
            .map(|((p, s), st)| (p + s) * st)
            .sum::<usize>()
            + starts[outer.len()];
        out.extend(first..first + row);
        next_position(&mut pos, outer);
    }
    out
}

impl Tensor {
    /// The same values with another shape of the same size (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "{:?} ({} elements) cannot become {:?} ({n} elements)",
                    self.shape(),
                    self.numel(),
                    shape,
                ),
            ));
        }
        if shape == self.shape() {
            return Ok(self.identity("reshape"));
        }
        Ok(Tensor::from_op_shared(
            self.storage(),
            shape.to_vec(),
            Reshape {
                in_shape: self.shape().to_vec(),
            },
            vec![self.clone()],
        ))
    }

    /// The position of a new axis among rank + 1 (−rank − 1 ≤ axis ≤ rank; negative counts
    /// from the end, −1 appending), as unsqueeze and stack take it.
    fn new_axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let slots = self.rank() as isize + 1;
        let a = if axis < 0 { axis + slots } else { axis };
        if a < 0 || a >= slots {
            return Err(Error::argument(
                op,
                format!("axis {axis} is out of range for shape {:?}", self.shape()),
            ));
        }
        Ok(a as usize)
    }

    /// Inserts an axis of size 1 at `axis` (−rank − 1 ≤ axis ≤ rank; negative counts from the
    /// end, so −1 appends).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let axis = self.new_axis("unsqueeze", axis)?;
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Merges axes `start..` into one: [N, C, H, W] → [N, C·H·W] for start 1 (negative
    /// counts from the end; a scalar flattens from 0 to \[1\]).
    pub fn flatten(&self, start: isize) -> Result<Tensor> {
        let rank = self.rank().max(1) as isize;
        let s = if start < 0 { start + rank } else { start };
        if s < 0 || s >= rank {
            return Err(Error::argument(
                "flatten",
                format!(
                    "start axis {start} is out of range for shape {:?}",
                    self.shape()
                ),
            ));
        }
        let start = s as usize;
        let mut shape = self.shape()[..start].to_vec();
        shape.push(self.shape()[start..].iter().product());
        self.reshape(&shape)
    }

    /// Reorders the axes: output axis i is input axis perm\[i\].
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank()
            || perm
                .iter()
                .any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::argument(
                "permute",
                format!(
                    "{perm:?} is not a permutation of the axes of {:?}",
                    self.shape()
                ),
            ));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.identity("permute"));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let out = self.storage().permute(self.shape(), perm);
        Ok(Tensor::from_op(
            out,
            shape,
            Permute {
                perm: perm.to_vec(),
            },
            vec![self.clone()],
        ))
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (self.axis("transpose", a)?, self.axis("transpose", b)?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Repeats values along axes of size 1 (and new leading axes) up to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.identity("broadcast_to"));
        }
        if shape.len() < self.rank()
            || broadcast_shapes(self.shape(), shape).as_deref() != Some(shape)
        {
            return Err(Error::shape(
                "broadcast_to",
                format!("{:?} does not broadcast to {:?}", self.shape(), shape),
            ));
        }
        checked_alloc("broadcast_to", shape, self.dtype(), self.device())?;
        let out = self.storage().broadcast_to(self.shape(), shape);
        Ok(Tensor::from_op(
            out,
            shape.to_vec(),
            BroadcastTo {
                in_shape: self.shape().to_vec(),
            },
            vec![self.clone()],
        ))
    }

    /// out.flat\[i\] = self.flat[idx\[i\]], shaped `out_shape`.
    pub fn gather_flat(&self, idx: Arc<Vec<usize>>, out_shape: &[usize]) -> Result<Tensor> {
        if Some(idx.len()) != checked_numel("gather", out_shape).ok() {
            return Err(Error::shape(
                "gather",
                format!("{} indices cannot fill shape {:?}", idx.len(), out_shape),
            ));
        }
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.numel()) {
            return Err(Error::argument(
                "gather",
                format!(
                    "index {bad} is out of range for {} elements (shape {:?})",
                    self.numel(),
                    self.shape()
                ),
            ));
        }
        Ok(self.gather_flat_trusted(Indices::host(idx), out_shape, None))
    }

    /// [`Tensor::gather_flat`] for indices the engine computed itself (arg-max positions,
    /// slice boxes), already known to be in range and to fill `out_shape`.
    pub(crate) fn gather_flat_trusted(
        &self,
        idx: Indices,
        out_shape: &[usize],
        planes: Option<Planes>,
    ) -> Tensor {
        debug_assert!(idx.len() == numel(out_shape));
        let out = self.storage().gather(&idx);
        let op = GatherFlat {
            idx,
            in_shape: self.shape().to_vec(),
            planes,
        };
        Tensor::from_op(out, out_shape.to_vec(), op, vec![self.clone()])
    }

    /// out = zeros(out_shape); out.flat[idx\[i\]] += self.flat\[i\].
    pub fn scatter_add_flat(&self, idx: Arc<Vec<usize>>, out_shape: &[usize]) -> Result<Tensor> {
        if idx.len() != self.numel() {
            return Err(Error::shape(
                "scatter_add",
                format!(
                    "{} indices for {} values (shape {:?})",
                    idx.len(),
                    self.numel(),
                    self.shape()
                ),
            ));
        }
        let n = checked_alloc("scatter_add", out_shape, self.dtype(), self.device())?;
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            return Err(Error::argument(
                "scatter_add",
                format!("index {bad} is out of range for output shape {out_shape:?}"),
            ));
        }
        Ok(self.scatter_add_flat_trusted(Indices::host(idx), out_shape, None))
    }

    /// [`Tensor::scatter_add_flat`] for indices already known to be in range.
    pub(crate) fn scatter_add_flat_trusted(
        &self,
        idx: Indices,
        out_shape: &[usize],
        planes: Option<Planes>,
    ) -> Tensor {
        let n = numel(out_shape);
        debug_assert!(idx.len() == self.numel());
        let out = self.storage().scatter_add(&idx, n, planes);
        let op = ScatterAddFlat {
            idx,
            in_shape: self.shape().to_vec(),
            planes,
        };
        Tensor::from_op(out, out_shape.to_vec(), op, vec![self.clone()])
    }

    /// The box `ranges[d] = (start, end)` on each axis (end exclusive).
    pub fn slice(&self, ranges: &[(usize, usize)]) -> Result<Tensor> {
        if ranges.len() != self.rank()
            || ranges
                .iter()
                .zip(self.shape())
                .any(|(&(s, e), &d)| s > e || e > d)
        {
            return Err(Error::argument(
                "slice",
                format!("ranges {ranges:?} do not fit shape {:?}", self.shape()),
            ));
        }
        let starts: Vec<usize> = ranges.iter().map(|r| r.0).collect();
        let region: Vec<usize> = ranges.iter().map(|r| r.1 - r.0).collect();
        self.gather_flat(
            Arc::new(box_indices(self.shape(), &starts, &region)),
            &region,
        )
    }

    /// `len` entries of axis `axis` from `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.axis("narrow", axis)?;
        let mut ranges: Vec<(usize, usize)> = self.shape().iter().map(|&d| (0, d)).collect();
        ranges[a] = (start, start.saturating_add(len));
        self.slice(&ranges).map_err(|_| {
            Error::argument(
                "narrow",
                format!(
                    "start {start} and length {len} do not fit axis {a} of shape {:?}",
                    self.shape()
                ),
            )
        })
    }

    /// Zero padding: `pads[d] = (before, after)` for each axis.
    pub fn pad(&self, pads: &[(usize, usize)]) -> Result<Tensor> {
        if pads.len() != self.rank() {
            return Err(Error::argument(
                "pad",
                format!(
                    "{} (before, after) pairs for shape {:?}",
                    pads.len(),
                    self.shape()
                ),
            ));
        }
        let out_shape: Vec<usize> = self
            .shape()
            .iter()
            .zip(pads)
            .map(|(&d, &(b, a))| d.checked_add(b)?.checked_add(a))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::shape(
                    "pad",
                    format!("{:?} padded by {pads:?} overflows", self.shape()),
                )
            })?;
        checked_alloc("pad", &out_shape, self.dtype(), self.device())?;
        let starts: Vec<usize> = pads.iter().map(|p| p.0).collect();
        self.scatter_add_flat(
            Arc::new(box_indices(&out_shape, &starts, self.shape())),
            &out_shape,
        )
    }

    /// Joins tensors along an existing axis (negative counts from the end); all other sizes
    /// must agree. Takes `&[Tensor]` or `&[&Tensor]`.
    pub fn concat<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
        let tensors: Vec<&Tensor> = tensors.iter().map(Borrow::borrow).collect();
        let first = *tensors
            .first()
            .ok_or_else(|| Error::argument("concat", "no tensors given"))?;
        let axis = first.axis("concat", axis)?;
        let mut out_shape = first.shape().to_vec();
        out_shape[axis] = 0;
        for &t in &tensors {
            first.same_dtype("concat", t)?;
            let fits = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b);
            if !fits {
                let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
                return Err(Error::shape(
                    "concat",
                    format!("shapes {shapes:?} differ off axis {axis}"),
                ));
            }
            out_shape[axis] = out_shape[axis]
                .checked_add(t.shape()[axis])
                .ok_or_else(|| Error::shape("concat", format!("axis {axis} overflows")))?;
        }
        checked_alloc("concat", &out_shape, first.dtype(), first.device())?;
        if tensors.len() == 1 {
            return Ok(first.identity("concat"));
        }
        let mut offset = 0;
        let mut total: Option<Tensor> = None;
        for t in &tensors {
            let mut starts = vec![0; t.rank()];
            starts[axis] = offset;
            offset += t.shape()[axis];
            let placed = t.scatter_add_flat(
                Arc::new(box_indices(&out_shape, &starts, t.shape())),
                &out_shape,
            )?;
            total = Some(match total {
                Some(acc) => acc.add(&placed)?,
                None => placed,
            });
        }
        Ok(total.expect("at least one tensor"))
    }

    /// Joins same-shaped tensors along a new axis (−rank − 1 ≤ axis ≤ rank, as for
    /// [`Tensor::unsqueeze`]). Takes `&[Tensor]` or `&[&Tensor]`.
    pub fn stack<T: Borrow<Tensor>>(tensors: &[T], axis: isize) -> Result<Tensor> {
        let tensors: Vec<&Tensor> = tensors.iter().map(Borrow::borrow).collect();
        let first = *tensors
            .first()
            .ok_or_else(|| Error::argument("stack", "no tensors given"))?;
        if tensors.iter().any(|t| t.shape() != first.shape()) {
            let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
            return Err(Error::shape("stack", format!("shapes {shapes:?} differ")));
        }
        let axis = first.new_axis("stack", axis)? as isize;
        let expanded = tensors
            .iter()
            .map(|t| t.unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&expanded, axis)
    }

    /// The entries `indices` of axis `axis`, in that order (repeats allowed).
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor> {
        let a = self.axis("index_select", axis)?;
        let d = self.shape()[a];
        if let Some(&bad) = indices.iter().find(|&&i| i >= d) {
            return Err(Error::argument(
                "index_select",
                format!(
                    "index {bad} is out of range for axis {a} of size {d} (shape {:?})",
                    self.shape()
                ),
            ));
        }
        let outer: usize = self.shape()[..a].iter().product();
        let inner: usize = self.shape()[a + 1..].iter().product();
        let mut shape = self.shape().to_vec();
        shape[a] = indices.len();
        let len = checked_alloc("index_select", &shape, self.dtype(), self.device())?;
        let mut idx = Vec::with_capacity(len);
        if len > 0 {
            for o in 0..outer {
                for &i in indices {
                    idx.extend((0..inner).map(|k| (o * d + i) * inner + k));
                }
            }
        }
        self.gather_flat(Arc::new(idx), &shape)
    }

    /// torch.gather along `axis`: out has `index`'s shape and
    /// out[i₀, …, i_axis, …] = self[i₀, …, index[i₀, …, i_axis, …], …].
    ///
    /// `index` has the rank of `self`, sizes at most `self`'s off `axis` (any size along it),
    /// and holds integers in [0, self.shape\[axis\]) as f32 or f64 values (the engine has no
    /// integer dtype; f32 holds every integer up to 2²⁴ exactly); it may live on either device
    /// (it is read to the host) and is never differentiated. Built on the
    /// flat gather, so the derivative is the adjoint scatter-add:
    /// ∂L/∂self[…, j, …] = Σ over positions p with index\[p\] = j of ∂L/∂out\[p\].
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let a = self.axis(OP, axis)?;
        check_index_shape(OP, a, index, &[("input", self.shape(), true)])?;
        let idx = axis_indices(OP, a, index, self.shape())?;
        checked_alloc(OP, index.shape(), self.dtype(), self.device())?;
        Ok(self.gather_flat_trusted(Indices::host(Arc::new(idx)), index.shape(), None))
    }

    /// torch.scatter_add along `axis`: a copy of `self` with each value of `src` added at the
    /// position `index` names: out = self; out[i₀, …, index[i₀, …, i_axis, …], …] +=
    /// src[i₀, …, i_axis, …] for every position of `index` (repeated positions accumulate).
    ///
    /// `index` (integers held as f32/f64, as for [`Tensor::gather`]) has the rank of `self`
    /// and `src`, sizes at most `src`'s on every axis and at most `self`'s off `axis`; only
    /// the leading `index.shape()` box of `src` is used. Linear in `self` and `src`:
    /// ∂L/∂self = ∂L/∂out and ∂L/∂src = (∂L/∂out).gather(axis, index) on that box, zero off it.
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        const OP: &str = "scatter_add";
        let a = self.axis(OP, axis)?;
        self.same_dtype(OP, src)?;
        self.same_device(OP, src)?;
        check_index_shape(
            OP,
            a,
            index,
            &[("input", self.shape(), true), ("src", src.shape(), false)],
        )?;
        if index.numel() == 0 {
            // Nothing to add (and `src`'s box may be empty with sizes too large to stride).
            return Ok(self.identity(OP));
        }
        let idx = axis_indices(OP, a, index, self.shape())?;
        let part = if src.shape() == index.shape() {
            src.clone()
        } else {
            let ranges: Vec<(usize, usize)> = index.shape().iter().map(|&d| (0, d)).collect();
            src.slice(&ranges)?
        };
        let placed =
            part.scatter_add_flat_trusted(Indices::host(Arc::new(idx)), self.shape(), None);
        self.add(&placed)
    }

    /// Casts to another element type; the gradient is cast back. GPU tensors are f32 only.
    pub fn to_dtype(&self, dtype: crate::DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.identity("to_dtype"));
        }
        if self.device() == Device::Gpu {
            return Err(Error::new(
                "to_dtype",
                crate::ErrorKind::DType,
                format!(
                    "GPU tensors hold f32 only; move {:?} to the CPU for {dtype}",
                    self.shape()
                ),
            ));
        }
        checked_alloc("to_dtype", self.shape(), dtype, self.device())?;
        let out = Storage::from_f64s(self.to_vec_f64(), dtype);
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Cast { to: self.dtype() },
            vec![self.clone()],
        ))
    }

    /// The same values on `device`: an upload to the GPU or a read-back to the host. The
    /// gradient moves back, so a graph may cross devices. f64 tensors cannot go to the GPU.
    pub fn to(&self, device: Device) -> Result<Tensor> {
        let from = self.device();
        if device == from {
            return Ok(self.identity("to_device"));
        }
        let storage = match device {
            Device::Gpu => self.storage().to_gpu()?,
            Device::Cpu => self.storage().to_host(),
        };
        Ok(Tensor::from_op_shared(
            storage,
            self.shape().to_vec(),
            ToDevice { from },
            vec![self.clone()],
        ))
    }
}

/// Checks an index tensor of gather/scatter_add against the tensors it indexes: the same
/// rank, and each size at most theirs (off `axis` only, where `off_axis_only`).
fn check_index_shape(
    op: &'static str,
    axis: usize,
    index: &Tensor,
    against: &[(&str, &[usize], bool)],
) -> Result<()> {
    for &(name, shape, off_axis_only) in against {
        let fits = index.rank() == shape.len()
            && index
                .shape()
                .iter()
                .zip(shape)
                .enumerate()
                .all(|(d, (i, s))| (off_axis_only && d == axis) || i <= s);
        if !fits {
            return Err(Error::shape(
                op,
                format!(
                    "index of shape {:?} does not fit {name} of shape {shape:?} (axis {axis}: \
                     the same rank, and sizes at most {name}'s{})",
                    index.shape(),
                    if off_axis_only { " off the axis" } else { "" }
                ),
            ));
        }
    }
    Ok(())
}

/// The flat position in a buffer of `shape` for every position of `index` (row-major), with
/// the coordinate on `axis` replaced by the index value there; errors name the first value
/// that is not an integer in [0, shape[axis]).
fn axis_indices(
    op: &'static str,
    axis: usize,
    index: &Tensor,
    shape: &[usize],
) -> Result<Vec<usize>> {
    let values = index.to_vec_f64();
    if values.is_empty() {
        // Sizes of empty tensors may be too large to stride.
        return Ok(Vec::new());
    }
    let strides = contiguous_strides(shape);
    let ishape = index.shape();
    let size = shape[axis];
    let mut pos = vec![0usize; ishape.len()];
    let mut out = Vec::with_capacity(values.len());
    for &v in &values {
        if !(v >= 0.0 && v < size as f64 && v.fract() == 0.0) {
            return Err(Error::argument(
                op,
                format!(
                    "index value {v} at {pos:?} is not an integer in [0, {size}) for axis {axis} \
                     of shape {shape:?}"
                ),
            ));
        }
        out.push(
            pos.iter()
                .zip(&strides)
                .enumerate()
                .map(|(d, (&p, &st))| if d == axis { v as usize * st } else { p * st })
                .sum(),
        );
        next_position(&mut pos, ishape);
    }
    Ok(out)
}

struct Cast {
    to: crate::DType,
}
impl BackwardOp for Cast {
    fn name(&self) -> &'static str {
        "to_dtype"
    }
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to_dtype(self.to)?)])
    }
}

// ---- gradient-check cases ------------------------------------------------------------------

fn any(shape: &[usize], r: &mut crate::Rng) -> Tensor {
    checks::random_values(shape, checks::Domain::Any, r)
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![
        OpCheck::new("reshape", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let n: usize = shape.iter().product();
            let x = any(&shape, r);
            CheckCase::new(
                format!("reshape {shape:?} -> [{n}, 1]"),
                vec![x],
                move |t| t[0].reshape(&[n, 1]),
            )
        }),
        OpCheck::new("permute", 2, |r| {
            let shape = checks::random_shape(r, 2, 4, 4);
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            r.shuffle(&mut perm);
            let x = any(&shape, r);
            CheckCase::new(
                format!("permute {shape:?} by {perm:?}"),
                vec![x],
                move |t| t[0].permute(&perm),
            )
        }),
        OpCheck::new("broadcast_to", 2, |r| {
            let (a, b) = checks::broadcast_pair(r);
            let (small, big) =
                if a.len() <= b.len() && broadcast_shapes(&a, &b).as_deref() == Some(&b[..]) {
                    (a, b)
                } else {
                    (b, a)
                };
            let target = broadcast_shapes(&small, &big).expect("pair broadcasts");
            let x = any(&small, r);
            CheckCase::new(
                format!("broadcast_to {small:?} -> {target:?}"),
                vec![x],
                move |t| t[0].broadcast_to(&target),
            )
        }),
        OpCheck::new("slice", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 5);
            let ranges: Vec<(usize, usize)> = shape
                .iter()
                .map(|&d| {
                    let s = r.below(d);
                    (s, s + 1 + r.below(d - s))
                })
                .collect();
            let x = any(&shape, r);
            CheckCase::new(
                format!("slice {shape:?} to {ranges:?}"),
                vec![x],
                move |t| t[0].slice(&ranges),
            )
        }),
        OpCheck::new("pad", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 3);
            let pads: Vec<(usize, usize)> =
                shape.iter().map(|_| (r.below(3), r.below(3))).collect();
            let x = any(&shape, r);
            CheckCase::new(format!("pad {shape:?} by {pads:?}"), vec![x], move |t| {
                t[0].pad(&pads)
            })
        }),
        OpCheck::new("concat", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 3);
            let axis = r.below(shape.len());
            let mut other = shape.clone();
            other[axis] = 1 + r.below(3);
            let (a, b) = (any(&shape, r), any(&other, r));
            CheckCase::new(
                format!("concat {shape:?} and {other:?} on axis {axis}"),
                vec![a, b],
                move |t| Tensor::concat(&[&t[0], &t[1]], axis as isize),
            )
        }),
        OpCheck::new("stack", 2, |r| {
            let shape = checks::random_shape(r, 0, 2, 3);
            let axis = r.below(shape.len() + 1);
            let (a, b) = (any(&shape, r), any(&shape, r));
            // Half the cases count the axis from the end.
            let neg = if r.uniform() < 0.5 {
                shape.len() as isize + 1
            } else {
                0
            };
            let axis = axis as isize - neg;
            CheckCase::new(
                format!("stack two {shape:?} on axis {axis}"),
                vec![a, b],
                move |t| Tensor::stack(&[&t[0], &t[1]], axis),
            )
        }),
        OpCheck::new("index_select", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let axis = r.below(shape.len());
            let picks: Vec<usize> = (0..1 + r.below(5)).map(|_| r.below(shape[axis])).collect();
            let x = any(&shape, r);
            CheckCase::new(
                format!("index_select {shape:?} axis {axis} {picks:?}"),
                vec![x],
                move |t| t[0].index_select(axis as isize, &picks),
            )
        }),
        OpCheck::new("gather", 3, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let axis = r.below(shape.len());
            let (ishape, index) = random_index(&shape, axis, r);
            let x = any(&shape, r);
            let signed = axis as isize
                - if r.uniform() < 0.5 {
                    shape.len() as isize
                } else {
                    0
                };
            CheckCase::new(
                format!(
                    "gather {shape:?} axis {signed} index {ishape:?} {:?}",
                    index.to_vec_f64()
                ),
                vec![x],
                move |t| t[0].gather(signed, &index),
            )
        }),
        OpCheck::new("scatter_add", 3, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let axis = r.below(shape.len());
            let (ishape, index) = random_index(&shape, axis, r);
            // src may be larger than the index on every axis; only the index's box is used.
            let sshape: Vec<usize> = ishape.iter().map(|&d| d + r.below(2)).collect();
            let (x, src) = (any(&shape, r), any(&sshape, r));
            CheckCase::new(
                format!(
                    "scatter_add {shape:?} axis {axis} index {ishape:?} {:?} src {sshape:?}",
                    index.to_vec_f64()
                ),
                vec![x, src],
                move |t| t[0].scatter_add(axis as isize, &index, &t[1]),
            )
        }),
    ]
}

/// An index tensor for gather/scatter_add into `shape` along `axis`: sizes at most `shape`'s
/// off the axis, 1–4 along it, values (repeats likely) in range.
fn random_index(shape: &[usize], axis: usize, r: &mut crate::Rng) -> (Vec<usize>, Tensor) {
    let ishape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &s)| {
            if d == axis {
                1 + r.below(4)
            } else {
                1 + r.below(s)
            }
        })
        .collect();
    let values: Vec<f64> = (0..numel(&ishape))
        .map(|_| r.below(shape[axis]) as f64)
        .collect();
    let index = Tensor::from_f64s(&values, &ishape, crate::DType::F64).expect("length matches");
    (ishape, index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    /// The box's flat indices the plain way: every position of the box in row-major order.
    fn box_indices_one_by_one(shape: &[usize], starts: &[usize], region: &[usize]) -> Vec<usize> {
        let strides = contiguous_strides(shape);
        let mut pos = vec![0usize; region.len()];
        (0..numel(region))
            .map(|_| {
                let i = pos
                    .iter()
                    .zip(starts)
                    .zip(&strides)
                    .map(|((p, s), st)| (p + s) * st)
                    .sum();
                next_position(&mut pos, region);
                i
            })
            .collect()
    }

    #[test]
    fn box_indices_by_rows_are_the_indices_one_by_one() {
        let mut rng = crate::Rng::new(11);
        for case in 0..500 {
            let rank = rng.below(5);
            let shape: Vec<usize> = (0..rank).map(|_| rng.below(6)).collect();
            let starts: Vec<usize> = shape.iter().map(|&d| rng.below(d + 1)).collect();
            let region: Vec<usize> = shape
                .iter()
                .zip(&starts)
                .map(|(&d, &s)| rng.below(d - s + 1))
                .collect();
            assert_eq!(
                box_indices(&shape, &starts, &region),
                box_indices_one_by_one(&shape, &starts, &region),
                "case {case}: shape {shape:?}, starts {starts:?}, region {region:?}"
            );
        }
    }

    #[test]
    fn pad_then_slice_is_identity_and_concat_orders_values() {
        let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 4.0], &[2, 2], DType::F64).unwrap();
        let p = x.pad(&[(1, 0), (0, 2)]).unwrap();
        assert_eq!(p.shape(), &[3, 4]);
        assert_eq!(
            p.slice(&[(1, 3), (0, 2)]).unwrap().to_vec_f64(),
            x.to_vec_f64()
        );
        let c = Tensor::concat(&[x.clone(), x.mul_scalar(10.0).unwrap()], 1).unwrap();
        assert_eq!(
            c.to_vec_f64(),
            vec![1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0]
        );
    }

    #[test]
    fn negative_axes_count_from_the_end_and_joins_take_references() {
        let x = Tensor::zeros(&[2, 3, 4], DType::F64).unwrap();
        assert_eq!(x.unsqueeze(-1).unwrap().shape(), &[2, 3, 4, 1]);
        assert_eq!(x.unsqueeze(-4).unwrap().shape(), &[1, 2, 3, 4]);
        assert!(x.unsqueeze(-5).is_err() && x.unsqueeze(3).is_ok() && x.unsqueeze(4).is_err());
        assert_eq!(x.flatten(-2).unwrap().shape(), &[2, 12]);
        assert!(x.flatten(-4).is_err());
        let y = Tensor::ones(&[2, 3, 1], DType::F64).unwrap();
        assert_eq!(Tensor::concat(&[&x, &y], -1).unwrap().shape(), &[2, 3, 5]);
        assert_eq!(Tensor::stack(&[&x, &x], -1).unwrap().shape(), &[2, 3, 4, 2]);
        assert_eq!(
            Tensor::stack(&[x.clone(), x.neg().unwrap()], 0)
                .unwrap()
                .shape(),
            &[2, 2, 3, 4]
        );
        assert!(Tensor::concat(&[&x, &y], 3).is_err());
    }

    #[test]
    fn gather_and_scatter_add_follow_torch() {
        let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], DType::F64).unwrap();
        let idx = Tensor::from_f64s(&[2.0, 0.0, 1.0, 1.0], &[2, 2], DType::F32).unwrap();
        // torch.gather(x, 1, idx) = [[3, 1], [5, 5]].
        let g = x.gather(-1, &idx).unwrap();
        assert_eq!(g.shape(), &[2, 2]);
        assert_eq!(g.to_vec_f64(), vec![3.0, 1.0, 5.0, 5.0]);
        // torch.zeros(2, 3).scatter_add(1, idx, ones(2, 2)) = [[1, 0, 1], [0, 2, 0]].
        let z = Tensor::zeros(&[2, 3], DType::F64).unwrap();
        let src = Tensor::ones(&[2, 3], DType::F64).unwrap();
        let s = z.scatter_add(1, &idx, &src).unwrap();
        assert_eq!(s.to_vec_f64(), vec![1.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
        // Along axis 0: out[idx[i][j]][j] += src[i][j].
        let idx0 = Tensor::from_f64s(&[1.0, 0.0, 1.0], &[1, 3], DType::F64).unwrap();
        let s0 = x.scatter_add(0, &idx0, &src).unwrap();
        assert_eq!(s0.to_vec_f64(), vec![1.0, 3.0, 3.0, 5.0, 5.0, 7.0]);
        assert_eq!(
            x.gather(0, &idx0).unwrap().to_vec_f64(),
            vec![4.0, 2.0, 6.0]
        );
    }

    #[test]
    fn gather_and_scatter_add_reject_bad_indices() {
        let x = Tensor::zeros(&[2, 3], DType::F64).unwrap();
        let bad = Tensor::from_f64s(&[0.0, 3.0], &[1, 2], DType::F64).unwrap();
        let e = x.gather(1, &bad).unwrap_err().to_string();
        assert!(
            e.starts_with("gather: index value 3 at [0, 1]") && e.contains("axis 1"),
            "{e}"
        );
        let frac = Tensor::from_f64s(&[0.5], &[1, 1], DType::F64).unwrap();
        assert!(x.gather(0, &frac).is_err());
        let neg = Tensor::from_f64s(&[-1.0], &[1, 1], DType::F64).unwrap();
        assert!(x
            .scatter_add(0, &neg, &x)
            .unwrap_err()
            .to_string()
            .starts_with("scatter_add"));
        let wide = Tensor::zeros(&[1, 4], DType::F64).unwrap();
        assert!(x
            .gather(0, &wide)
            .unwrap_err()
            .to_string()
            .contains("does not fit input"));
        let rank1 = Tensor::zeros(&[2], DType::F64).unwrap();
        assert!(x.gather(0, &rank1).is_err());
        let small_src = Tensor::zeros(&[1, 1], DType::F64).unwrap();
        assert!(x
            .scatter_add(0, &bad.mul_scalar(0.0).unwrap(), &small_src)
            .unwrap_err()
            .to_string()
            .contains("src"));
        assert!(x.gather(2, &bad).is_err());
    }

    #[test]
    fn shape_errors_name_the_op_and_shapes() {
        let x = Tensor::zeros(&[2, 3], DType::F32).unwrap();
        let e = x.reshape(&[4, 2]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reshape: [2, 3] (6 elements) cannot become [4, 2] (8 elements)"
        );
        assert!(x
            .add(&Tensor::zeros(&[4], DType::F32).unwrap())
            .unwrap_err()
            .to_string()
            .contains("[2, 3] and [4] do not broadcast"));
    }
}
