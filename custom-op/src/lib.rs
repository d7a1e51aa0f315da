//! # ferrograd-custom-op
//!
//! How a program outside ferrograd adds a primitive of its own, using nothing but the public
//! API of `ferrograd-engine`: a fused SiLU (swish), y = x·σ(x), with one CPU kernel, one WGSL
//! kernel and a derivative rule written with engine ops, so that it is differentiable to any
//! order and checked by the engine's own finite-difference checker
//! (`tests/public_api.rs`; `cargo run -p ferrograd-custom-op --example fused_silu`).

// Every public item is documented: readers learn from this source, and CI turns the
// warning into an error (clippy -D warnings).
#![warn(missing_docs)]

use ferrograd_engine::{CustomOp, Element, Result, Tensor, WgslKernel};

/// y = x·σ(x) = x / (1 + e^(−x)), in one pass instead of the three of `x.mul(&x.sigmoid()?)`.
pub struct FusedSilu;

/// σ(x) without overflow for large |x|.
fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// The WGSL kernel: one invocation per element, the bindings of [`WgslKernel`].
const SHADER: &str = r#"
@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn fused_silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params[0] {
        return;
    }
    let v = x[i];
    var s: f32;
    if v >= 0.0 {
        s = 1.0 / (1.0 + exp(-v));
    } else {
        let e = exp(v);
        s = e / (1.0 + e);
    }
    y[i] = v * s;
}
"#;

impl CustomOp for FusedSilu {
    fn name(&self) -> &'static str {
        "fused_silu"
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }

    fn cpu_forward<T: Element>(&self, inputs: &[&[T]], out: &mut [T]) -> Result<()> {
        for (y, &x) in out.iter_mut().zip(inputs[0]) {
            *y = x * sigmoid(x);
        }
        Ok(())
    }

    fn wgsl(&self) -> Option<WgslKernel> {
        Some(WgslKernel {
            source: SHADER.to_string(),
            entry: "fused_silu",
            params: Vec::new(),
        })
    }

    /// dy/dx = σ(x) + x·σ(x)·(1 − σ(x)), written with engine ops: recorded under
    /// `create_graph`, so the second and third derivatives follow from sigmoid's and mul's.
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let s = x.sigmoid()?;
        let one_minus_s = s.neg()?.add_scalar(1.0)?;
        let dy = s.add(&x.mul(&s)?.mul(&one_minus_s)?)?;
        Ok(vec![Some(g.mul(&dy)?)])
    }
}

/// The fused SiLU of `x` (any shape, on the CPU in f32 or f64, or on the GPU).
pub fn fused_silu(x: &Tensor) -> Result<Tensor> {
    Tensor::custom(FusedSilu, &[x])
}

/// A small training run with the op: a two-layer perceptron with fused SiLU activations
/// learns to tell points inside a circle from points outside it, by Adam on the engine's fused
/// step. Returns the loss of every step.
pub fn train_circle_classifier(steps: usize, seed: u64) -> Result<Vec<f64>> {
    use ferrograd_engine::{adam_step, AdamStep, DType, Rng};
    let mut rng = Rng::new(seed);
    // 256 points in [−1, 1]², label 1 inside the circle of radius 0.7.
    let n = 256;
    let points: Vec<f64> = (0..2 * n).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let labels: Vec<usize> = points
        .chunks(2)
        .map(|p| usize::from(p[0] * p[0] + p[1] * p[1] < 0.49))
        .collect();
    let x = Tensor::from_f64s(&points, &[n, 2], DType::F32)?;
    let mut param = |shape: &[usize], scale: f64| -> Result<Tensor> {
        Ok(Tensor::randn(shape, 0.0, scale, DType::F32, &mut rng)?.requires_grad_())
    };
    let params = [
        param(&[2, 32], 1.0)?,
        param(&[32], 0.1)?,
        param(&[32, 2], 0.25)?,
        param(&[2], 0.1)?,
    ];
    let moments: Vec<(Tensor, Tensor)> = params
        .iter()
        .map(|p| (p.zeros_like(), p.zeros_like()))
        .collect();
    let (beta1, beta2) = (0.9f64, 0.999f64);
    let mut losses = Vec::with_capacity(steps);
    for t in 1..=steps {
        let hidden = fused_silu(&x.matmul(&params[0])?.add(&params[1])?)?;
        let loss = hidden
            .matmul(&params[2])?
            .add(&params[3])?
            .cross_entropy(&labels)?;
        loss.backward()?;
        let h = AdamStep {
            lr: 0.05,
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay: 0.0,
            bias1: 1.0 - beta1.powi(t as i32),
            bias2: 1.0 - beta2.powi(t as i32),
        };
        for (p, (m, v)) in params.iter().zip(&moments) {
            let g = p.grad().expect("every parameter is used");
            adam_step(p, m, v, &g, h)?;
            p.zero_grad();
        }
        losses.push(loss.item()?);
    }
    Ok(losses)
}
