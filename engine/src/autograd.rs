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

/// An op's derivative rule: given the op's inputs and the gradient of the loss with respect to
/// its output, the gradients with respect to each input (`None` where an input gets none).
/// Rules must be written with engine ops so they can be recorded and differentiated again.
pub trait BackwardOp: Send + Sync {
    fn name(&self) -> &'static str;
    fn backward(&self, inputs: &[Tensor], output_grad: &Tensor) -> Result<Vec<Option<Tensor>>>;
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

/// The reverse sweep. Returns the gradient of every tensor in `wanted` (all reached tensors
/// when `None`), keyed by tensor id, and the leaves reached.
fn sweep(
    outputs: &[Tensor],
    grad_outputs: &[Tensor],
    wanted: Option<&HashSet<u64>>,
    create_graph: bool,
) -> Result<(HashMap<u64, Tensor>, Vec<Tensor>)> {
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
        let input_grads = node.op.backward(&node.inputs, &g)?;
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
    Ok((grads, leaves))
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

/// Gradients of `outputs` with respect to `inputs`, weighted by `grad_outputs` (ones for scalar
/// outputs when `None`): Σ_o grad_outputs[o] · ∂outputs[o]/∂inputs[i].
///
/// `inputs` may be any tensors of the graph, not only leaves (an inner activation map, for
/// instance). An input that the outputs do not depend on gets zeros. With `create_graph` the
/// returned gradients are recorded and can be differentiated again, to any order.
pub fn grad(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    grad_outputs: Option<&[&Tensor]>,
    create_graph: bool,
) -> Result<Vec<Tensor>> {
    let outputs: Vec<Tensor> = outputs.iter().map(|&t| t.clone()).collect();
    let grad_outputs: Option<Vec<Tensor>> =
        grad_outputs.map(|gs| gs.iter().map(|&t| t.clone()).collect());
    let gos = default_grad_outputs("grad", &outputs, grad_outputs.as_deref())?;
    let wanted: HashSet<u64> = inputs.iter().map(|t| t.id()).collect();
    let (grads, _) = sweep(&outputs, &gos, Some(&wanted), create_graph)?;
    Ok(inputs
        .iter()
        .map(|i| {
            grads
                .get(&i.id())
                .cloned()
                .unwrap_or_else(|| i.zeros_like())
        })
        .collect())
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
        let (grads, leaves) = sweep(&outputs, &gos, None, create_graph)?;
        let _mode = GradModeGuard::new(create_graph);
        for leaf in leaves {
            if let Some(g) = grads.get(&leaf.id()) {
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
