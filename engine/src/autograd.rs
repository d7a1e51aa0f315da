//! The tape and the reverse sweep.
//!
//! Every recorded op leaves a [`Node`] on its output: the op's derivative rule and the input
//! tensors. The graph is the web of these nodes, reference-counted, so a training step's tape is
//! freed when the step's last tensor is dropped. A backward sweep visits tensors in reverse
//! topological order and calls each node's rule, which is written with engine ops: with
//! `create_graph` those ops are recorded too, and the gradient is itself differentiable.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An op's derivative rule: given the op's inputs, its output and the gradient of the loss
/// with respect to that output, the gradients with respect to each input (`None` where an
/// input gets none). Rules are written with engine ops so that they can be recorded and
/// differentiated again; the output they receive is the op's own output tensor, part of the
/// graph, so a rule that reads it (σ' = σ(1 − σ)) stays right at every order.
///
/// This is the engine's internal form; user-defined primitives implement
/// [`crate::CustomOp`], which the engine wraps in one of these.
pub(crate) trait BackwardOp: Send + Sync {
    fn name(&self) -> &'static str;
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        output_grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;
}

static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

/// Number of tape nodes alive in the process: a training loop that frees its tapes keeps this
/// flat from step to step.
pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

/// One recorded op application.
pub struct Node {
    pub(crate) op: Box<dyn BackwardOp>,
    pub(crate) inputs: Vec<Tensor>,
}

impl Node {
    pub(crate) fn new(op: Box<dyn BackwardOp>, inputs: Vec<Tensor>) -> Node {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node { op, inputs }
    }
}

impl Drop for Node {
    /// Frees a chain of nodes iteratively: the default recursive drop would overflow the stack
    /// on a graph tens of thousands of ops deep.
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
        let mut pending = std::mem::take(&mut self.inputs);
        while let Some(tensor) = pending.pop() {
            if let Ok(inner) = Arc::try_unwrap(tensor.0) {
                if let Some(node) = inner.grad_fn {
                    if let Ok(mut node) = Arc::try_unwrap(node) {
                        pending.append(&mut node.inputs);
                    }
                }
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record the tape.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous recording state when dropped.
pub struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    /// Sets recording on this thread to `enabled` until the guard drops.
    pub fn new(enabled: bool) -> GradModeGuard {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` without recording: for evaluation, optimizer steps and anything else whose
/// results need no gradient.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::new(false);
    f()
}

/// Tensors reachable from `outputs` through recorded nodes, producers after consumers'
/// children: a post-order, so its reverse is a topological order from outputs to leaves.
fn post_order(outputs: &[Tensor]) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // (tensor, children already pushed?)
    let mut stack: Vec<(Tensor, bool)> = outputs.iter().rev().map(|t| (t.clone(), false)).collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        let inputs: Vec<Tensor> = t
            .grad_fn()
            .map(|n| {
                n.inputs
                    .iter()
                    .filter(|i| i.requires_grad())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        stack.push((t, true));
        for i in inputs.into_iter().rev() {
            if !visited.contains(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    order
}

/// What a reverse sweep found: the gradient of every wanted tensor that got one (keyed by
/// id), the leaves reached, and the ids of every tensor on a path from an output to a wanted
/// one (so a wanted tensor missing from it is not used by the outputs at all).
struct Swept {
    grads: HashMap<u64, Tensor>,
    leaves: Vec<Tensor>,
    needed: HashSet<u64>,
}

/// The reverse sweep over the tensors that lead from `outputs` to a tensor in `wanted` (all
/// reached tensors when `None`).
fn sweep(
    outputs: &[Tensor],
    grad_outputs: &[Tensor],
    wanted: Option<&HashSet<u64>>,
    create_graph: bool,
) -> Result<Swept> {
    let order = post_order(outputs);
    // A node is worth running only if a wanted tensor lies below it.
    let needed: HashSet<u64> = match wanted {
        None => order.iter().map(Tensor::id).collect(),
        Some(w) => {
            let mut needed = HashSet::new();
            for t in &order {
                let below = t
                    .grad_fn()
                    .is_some_and(|n| n.inputs.iter().any(|i| needed.contains(&i.id())));
                if w.contains(&t.id()) || below {
                    needed.insert(t.id());
                }
            }
            needed
        }
    };
    let _mode = GradModeGuard::new(create_graph);
    let mut grads: HashMap<u64, Tensor> = HashMap::new();
    for (out, g) in outputs.iter().zip(grad_outputs) {
        accumulate(&mut grads, out.id(), g.clone())?;
    }
    let mut leaves = Vec::new();
    for t in order.iter().rev() {
        if !needed.contains(&t.id()) {
            continue;
        }
        let Some(node) = t.grad_fn() else {
            leaves.push(t.clone());
            continue;
        };
        let keep = wanted.is_none_or(|w| w.contains(&t.id()));
        let Some(g) = (if keep {
            grads.get(&t.id()).cloned()
        } else {
            grads.remove(&t.id())
        }) else {
            continue;
        };
        let input_grads = node.op.backward(&node.inputs, t, &g)?;
        if input_grads.len() != node.inputs.len() {
            return Err(Error::autograd(
                node.op.name(),
                format!(
                    "derivative rule gave {} gradients for {} inputs",
                    input_grads.len(),
                    node.inputs.len()
                ),
            ));
        }
        for (input, ig) in node.inputs.iter().zip(input_grads) {
            let Some(ig) = ig else { continue };
            if !input.requires_grad() || !needed.contains(&input.id()) {
                continue;
            }
            if ig.shape() != input.shape() {
                return Err(Error::autograd(
                    node.op.name(),
                    format!(
                        "derivative rule gave a gradient of shape {:?} for an input of shape {:?}",
                        ig.shape(),
                        input.shape()
                    ),
                ));
            }
            accumulate(&mut grads, input.id(), ig)?;
        }
    }
    Ok(Swept {
        grads,
        leaves,
        needed,
    })
}

fn accumulate(grads: &mut HashMap<u64, Tensor>, id: u64, g: Tensor) -> Result<()> {
    let sum = match grads.remove(&id) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    grads.insert(id, sum);
    Ok(())
}

fn default_grad_outputs(
    op: &'static str,
    outputs: &[Tensor],
    grad_outputs: Option<&[Tensor]>,
) -> Result<Vec<Tensor>> {
    match grad_outputs {
        Some(gs) => {
            if gs.len() != outputs.len() {
                return Err(Error::autograd(
                    op,
                    format!(
                        "{} outputs but {} output gradients",
                        outputs.len(),
                        gs.len()
                    ),
                ));
            }
            for (o, g) in outputs.iter().zip(gs) {
                if o.shape() != g.shape() {
                    return Err(Error::shape(
                        op,
                        format!(
                            "output of shape {:?} given a gradient of shape {:?}",
                            o.shape(),
                            g.shape()
                        ),
                    ));
                }
                o.same_device(op, g)?;
                o.same_dtype(op, g)?;
            }
            Ok(gs.to_vec())
        }
        None => outputs
            .iter()
            .map(|o| {
                if o.numel() == 1 {
                    Ok(o.ones_like())
                } else {
                    Err(Error::autograd(
                        op,
                        format!(
                            "an output of shape {:?} is not a scalar: pass grad_outputs",
                            o.shape()
                        ),
                    ))
                }
            })
            .collect(),
    }
}

/// Options of [`grad_with`].
#[derive(Clone, Copy, Default)]
pub struct GradOptions<'a> {
    /// The weights of each output (ones for scalar outputs when `None`).
    pub grad_outputs: Option<&'a [&'a Tensor]>,
    /// Record the backward pass, so the gradients can be differentiated again.
    pub create_graph: bool,
    /// Give `None` for an input the outputs do not depend on, instead of an error. (For zeros,
    /// `.unwrap_or_else(|| input.zeros_like())`, as PyTorch's `materialize_grads`.)
    pub allow_unused: bool,
}

/// Gradients of `outputs` with respect to `inputs`, weighted by `grad_outputs` (ones for scalar
/// outputs when `None`): `Σ_o grad_outputs[o] · ∂outputs[o]/∂inputs[i]`.
///
/// `inputs` may be any tensors of the graph, not only leaves (an inner activation map, for
/// instance). With `create_graph` the returned gradients are recorded and can be
/// differentiated again, to any order.
///
/// Refused, as PyTorch's `torch.autograd.grad` refuses them: no outputs; an output that does
/// not require gradients (computed under `no_grad`, from constants only, or a gradient taken
/// without `create_graph`, whose second derivative would otherwise be a silent zero); an input
/// that does not require gradients; and an input the outputs do not depend on ([`grad_with`]
/// with `allow_unused` gives `None` for it instead). An input the outputs reach only through
/// piecewise-constant ops (a mask, a sign) gets zeros: its derivative is zero, not undefined.
pub fn grad(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    grad_outputs: Option<&[&Tensor]>,
    create_graph: bool,
) -> Result<Vec<Tensor>> {
    let options = GradOptions {
        grad_outputs,
        create_graph,
        allow_unused: false,
    };
    Ok(grad_with(outputs, inputs, options)?
        .into_iter()
        .map(|g| g.expect("without allow_unused every input has a gradient"))
        .collect())
}

/// [`grad`] with its options spelled out; `None` only for an unused input under
/// `allow_unused`.
pub fn grad_with(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    options: GradOptions<'_>,
) -> Result<Vec<Option<Tensor>>> {
    if outputs.is_empty() {
        return Err(Error::autograd(
            "grad",
            "no outputs given: there is nothing to differentiate",
        ));
    }
    for (i, o) in outputs.iter().enumerate() {
        if !o.requires_grad() {
            return Err(Error::autograd(
                "grad",
                format!(
                    "output {i} (shape {:?}) does not require gradients: it was computed under \
                     no_grad, from tensors that do not require them, or it is a gradient taken \
                     without create_graph = true (needed to differentiate it again)",
                    o.shape()
                ),
            ));
        }
    }
    for (i, x) in inputs.iter().enumerate() {
        if !x.requires_grad() {
            return Err(Error::autograd(
                "grad",
                format!(
                    "input {i} (shape {:?}) does not require gradients: mark it with \
                     requires_grad_(), or compute it from a tensor that requires them",
                    x.shape()
                ),
            ));
        }
    }
    let outputs: Vec<Tensor> = outputs.iter().map(|&t| t.clone()).collect();
    let grad_outputs: Option<Vec<Tensor>> = options
        .grad_outputs
        .map(|gs| gs.iter().map(|&t| t.clone()).collect());
    let gos = default_grad_outputs("grad", &outputs, grad_outputs.as_deref())?;
    let wanted: HashSet<u64> = inputs.iter().map(|t| t.id()).collect();
    let swept = sweep(&outputs, &gos, Some(&wanted), options.create_graph)?;
    inputs
        .iter()
        .enumerate()
        .map(|(i, x)| match swept.grads.get(&x.id()) {
            Some(g) => Ok(Some(g.clone())),
            // Reached, but every path passes a piecewise-constant op: a zero derivative.
            None if swept.needed.contains(&x.id()) => Ok(Some(x.zeros_like())),
            None if options.allow_unused => Ok(None),
            None => Err(Error::autograd(
                "grad",
                format!(
                    "input {i} (shape {:?}) is not used by the outputs; pass allow_unused \
                     (grad_with) to get None for it",
                    x.shape()
                ),
            )),
        })
        .collect()
}

impl Tensor {
    /// Accumulates d(self)/d(leaf) into `leaf.grad()` for every leaf that requires gradients.
    /// `self` must be a scalar; see [`Tensor::backward_with`] otherwise.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None, false)
    }

    /// Backward from a tensor of any shape, weighted by `grad_output`; with `create_graph` the
    /// accumulated gradients stay differentiable.
    pub fn backward_with(&self, grad_output: Option<&Tensor>, create_graph: bool) -> Result<()> {
        let outputs = [self.clone()];
        let gos =
            default_grad_outputs("backward", &outputs, grad_output.map(std::slice::from_ref))?;
        if !self.requires_grad() {
            return Err(Error::autograd("backward", "this tensor does not require gradients: no input was marked with requires_grad, or it was computed under no_grad"));
        }
        let swept = sweep(&outputs, &gos, None, create_graph)?;
        let _mode = GradModeGuard::new(create_graph);
        for leaf in swept.leaves {
            if let Some(g) = swept.grads.get(&leaf.id()) {
                let g = if create_graph { g.clone() } else { g.detach() };
                let total = match leaf.grad() {
                    Some(prev) => prev.add(&g)?,
                    None => g,
                };
                leaf.set_grad(Some(total));
            }
        }
        Ok(())
    }
}
