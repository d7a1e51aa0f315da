//! Layers. Each holds its parameters as leaf tensors that require gradients, names them as
//! PyTorch does (`weight`, `bias`, `running_mean`, nested as `encoder.0.weight`), and
//! initialises them as PyTorch's layers do by default, so a checkpoint maps onto a PyTorch
//! module of the same architecture name for name.

use ferrograd_engine::{
    batch_norm, BatchNormState, Conv2dParams, ConvTranspose2dParams, DType, Device, Error, Result,
    Rng, Tensor,
};

/// What a forward pass needs besides its input: training or evaluation (dropout, batch-norm
/// statistics) and the generator for dropout masks.
pub struct Ctx {
    /// Whether this pass trains: dropout drops and batch norm uses the batch's statistics.
    pub training: bool,
    /// The generator of dropout masks.
    pub rng: Rng,
}

impl Ctx {
    /// A training context whose dropout masks are drawn from `seed`.
    pub fn train(seed: u64) -> Ctx {
        Ctx {
            training: true,
            rng: Rng::new(seed),
        }
    }
    /// An evaluation context: no dropout, batch norm on its running statistics.
    pub fn eval() -> Ctx {
        Ctx {
            training: false,
            rng: Rng::new(0),
        }
    }
}

/// A layer or a network of layers.
///
/// Every module is `Any`, so code that needs a layer's parts (a convolution's weight, a batch
/// norm's statistics) can find them in a [`Sequential`]: `(layer.as_ref() as &dyn Any)
/// .downcast_ref::<Conv2d>()`, with `std::any::Any`.
pub trait Module: std::any::Any + Send + Sync {
    /// The layer's output for input `x`, recorded on the tape when gradients are enabled.
    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor>;
    /// Trainable parameters, named with `prefix` (e.g. `"encoder.0."`).
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>);
    /// State that is saved but not trained (batch-norm running statistics).
    fn named_buffers(&self, _prefix: &str, _out: &mut Vec<(String, Tensor)>) {}
    /// Calls `f` on every batch-norm layer inside (for recalibrating their statistics).
    fn for_each_batch_norm(&self, _f: &mut dyn FnMut(&BatchNorm2d)) {}
}

/// Parameters of a module as a fresh list.
pub fn params_of(m: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.named_params(prefix, &mut out);
    out
}

/// Parameters and buffers: everything a checkpoint stores for a module.
pub fn state_of(m: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out = params_of(m, prefix);
    m.named_buffers(prefix, &mut out);
    out
}

/// Moves a module's parameters and buffers to `device`, in place.
pub fn move_module(m: &dyn Module, device: Device) -> Result<()> {
    state_of(m, "")
        .iter()
        .try_for_each(|(_, t)| t.move_in_place(device))
}

/// Initialisation schemes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−b, b) with b = 1/√fan_in: PyTorch's default for Linear and Conv layers (its
    /// kaiming_uniform with a = √5 reduces to this bound).
    PytorchDefault,
    /// N(0, 2/fan_in) (He et al. 2015), for ReLU networks.
    KaimingNormal,
    /// U(−b, b) with b = √(6/(fan_in + fan_out)) (Glorot & Bengio 2010).
    XavierUniform,
    /// N(0, σ²), e.g. σ = 0.02 for DCGAN (Radford et al. 2016).
    Normal(f64),
}

/// A fresh f32 parameter of `shape` drawn from `init`.
pub fn init_param(
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    init: Init,
    rng: &mut Rng,
) -> Result<Tensor> {
    let t = match init {
        Init::PytorchDefault => {
            let b = 1.0 / (fan_in.max(1) as f64).sqrt();
            Tensor::rand_uniform(shape, -b, b, DType::F32, rng)?
        }
        Init::KaimingNormal => Tensor::randn(
            shape,
            0.0,
            (2.0 / fan_in.max(1) as f64).sqrt(),
            DType::F32,
            rng,
        )?,
        Init::XavierUniform => {
            let b = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
            Tensor::rand_uniform(shape, -b, b, DType::F32, rng)?
        }
        Init::Normal(std) => Tensor::randn(shape, 0.0, std, DType::F32, rng)?,
    };
    Ok(t.requires_grad_())
}

fn push(out: &mut Vec<(String, Tensor)>, prefix: &str, name: &str, t: &Tensor) {
    out.push((format!("{prefix}{name}"), t.clone()));
}

/// `weight`, then `bias` if the layer has one: the parameters of Linear and the convolutions.
fn push_weight_and_bias(
    out: &mut Vec<(String, Tensor)>,
    prefix: &str,
    weight: &Tensor,
    bias: &Option<Tensor>,
) {
    push(out, prefix, "weight", weight);
    if let Some(b) = bias {
        push(out, prefix, "bias", b);
    }
}

/// y = x·Wᵀ + b with W: [out, in] (PyTorch's layout), b: \[out\].
pub struct Linear {
    /// W: [out, in].
    pub weight: Tensor,
    /// b: \[out\], if the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with a bias, initialised as PyTorch's `nn.Linear` (U(±1/√in) for W and b).
    pub fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Result<Linear> {
        Linear::with_init(inputs, outputs, true, Init::PytorchDefault, rng)
    }
    /// A layer with the given bias choice and initialiser.
    pub fn with_init(
        inputs: usize,
        outputs: usize,
        bias: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<Linear> {
        let weight = init_param(&[outputs, inputs], inputs, outputs, init, rng)?;
        // PyTorch draws biases from U(−1/√fan_in, 1/√fan_in) whatever the weight scheme.
        let bias = bias
            .then(|| init_param(&[outputs], inputs, outputs, Init::PytorchDefault, rng))
            .transpose()?;
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let y = x.matmul_t(&self.weight, false, true)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        push_weight_and_bias(out, prefix, &self.weight, &self.bias);
    }
}

/// 2-D convolution; weight [out, in/groups, k, k].
pub struct Conv2d {
    /// W: [out, in/groups, k, k].
    pub weight: Tensor,
    /// b: \[out\], if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
}

impl Conv2d {
    /// A layer with a bias, initialised as PyTorch's `nn.Conv2d`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        params: Conv2dParams,
        rng: &mut Rng,
    ) -> Result<Conv2d> {
        Conv2d::with_init(
            inputs,
            outputs,
            kernel,
            params,
            true,
            Init::PytorchDefault,
            rng,
        )
    }
    /// A layer with the given bias choice and initialiser.
    pub fn with_init(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        params: Conv2dParams,
        bias: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<Conv2d> {
        let per_group = inputs / params.groups.max(1);
        let fan_in = per_group * kernel * kernel;
        let fan_out = outputs / params.groups.max(1) * kernel * kernel;
        let weight = init_param(
            &[outputs, per_group, kernel, kernel],
            fan_in,
            fan_out,
            init,
            rng,
        )?;
        let bias = bias
            .then(|| init_param(&[outputs], fan_in, fan_out, Init::PytorchDefault, rng))
            .transpose()?;
        Ok(Conv2d {
            weight,
            bias,
            params,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.params)
    }
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        push_weight_and_bias(out, prefix, &self.weight, &self.bias);
    }
}

/// 2-D transposed convolution; weight [in, out/groups, k, k] (PyTorch's layout).
pub struct ConvTranspose2d {
    /// W: [in, out/groups, k, k] (PyTorch's layout for the transposed convolution).
    pub weight: Tensor,
    /// b: \[out\], if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, output padding, dilation and groups.
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// A layer with a bias, initialised as PyTorch's `nn.ConvTranspose2d`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        params: ConvTranspose2dParams,
        rng: &mut Rng,
    ) -> Result<ConvTranspose2d> {
        ConvTranspose2d::with_init(
            inputs,
            outputs,
            kernel,
            params,
            true,
            Init::PytorchDefault,
            rng,
        )
    }
    /// A layer with the given bias choice and initialiser.
    pub fn with_init(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        params: ConvTranspose2dParams,
        bias: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<ConvTranspose2d> {
        let per_group = outputs / params.groups.max(1);
        // PyTorch computes fan_in from weight axis 1: out/groups · k².
        let fan_in = per_group * kernel * kernel;
        let fan_out = inputs / params.groups.max(1) * kernel * kernel;
        let weight = init_param(
            &[inputs, per_group, kernel, kernel],
            fan_in,
            fan_out,
            init,
            rng,
        )?;
        let bias = bias
            .then(|| init_param(&[outputs], fan_in, fan_out, Init::PytorchDefault, rng))
            .transpose()?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            params,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        x.conv_transpose2d(&self.weight, self.bias.as_ref(), self.params)
    }
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        push_weight_and_bias(out, prefix, &self.weight, &self.bias);
    }
}

/// Batch normalisation over [N, C, H, W] (or [N, C]), PyTorch's BatchNorm2d/1d: γ = 1, β = 0,
/// momentum 0.1, ε = 1e-5.
pub struct BatchNorm2d {
    /// γ: \[C\], the per-channel scale (trained).
    pub weight: Tensor,
    /// β: \[C\], the per-channel shift (trained).
    pub bias: Tensor,
    /// The running mean of each channel, used in evaluation (saved, not trained).
    pub running_mean: Tensor,
    /// The running (unbiased) variance of each channel, used in evaluation (saved, not trained).
    pub running_var: Tensor,
    /// Weight of each new batch in the running statistics (f64 bits; settable through a shared
    /// reference so recalibration can average exactly).
    momentum: std::sync::atomic::AtomicU64,
    /// ε, added to the variance before the square root.
    pub eps: f64,
}

impl BatchNorm2d {
    /// A layer over `channels` channels with PyTorch's defaults.
    pub fn new(channels: usize) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d {
            weight: Tensor::ones(&[channels], DType::F32)?.requires_grad_(),
            bias: Tensor::zeros(&[channels], DType::F32)?.requires_grad_(),
            running_mean: Tensor::zeros(&[channels], DType::F32)?,
            running_var: Tensor::ones(&[channels], DType::F32)?,
            momentum: std::sync::atomic::AtomicU64::new(0.1f64.to_bits()),
            eps: 1e-5,
        })
    }
    /// The weight of each new batch in the running statistics.
    pub fn momentum(&self) -> f64 {
        f64::from_bits(self.momentum.load(std::sync::atomic::Ordering::Relaxed))
    }
    /// Sets that weight (1/k for the k-th batch of a recalibration gives the exact average).
    pub fn set_momentum(&self, momentum: f64) {
        self.momentum
            .store(momentum.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let state = BatchNormState {
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            momentum: self.momentum(),
        };
        batch_norm(
            x,
            &self.weight,
            &self.bias,
            Some(state),
            ctx.training,
            self.eps,
        )
    }
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        push(out, prefix, "weight", &self.weight);
        push(out, prefix, "bias", &self.bias);
    }
    fn named_buffers(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        push(out, prefix, "running_mean", &self.running_mean);
        push(out, prefix, "running_var", &self.running_var);
    }
    fn for_each_batch_norm(&self, f: &mut dyn FnMut(&BatchNorm2d)) {
        f(self);
    }
}

/// Zeroes activations with probability p while training (inverted dropout).
pub struct Dropout(pub f64);

impl Module for Dropout {
    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        x.dropout(self.0, ctx.training, &mut ctx.rng)
    }
    fn named_params(&self, _prefix: &str, _out: &mut Vec<(String, Tensor)>) {}
}

/// Pointwise activations as layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// x for x > 0, else slope·x.
    LeakyRelu(f64),
    /// x for x > 0, else α(eˣ − 1).
    Elu(f64),
    /// σ(x) = 1 / (1 + e⁻ˣ).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// log(1 + eˣ).
    Softplus,
}

impl Module for Activation {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        match *self {
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.leaky_relu(slope),
            Activation::Elu(alpha) => x.elu(alpha),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softplus => x.softplus(),
        }
    }
    fn named_params(&self, _prefix: &str, _out: &mut Vec<(String, Tensor)>) {}
}

/// [N, …] → [N, ∏…].
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        x.flatten(1)
    }
    fn named_params(&self, _prefix: &str, _out: &mut Vec<(String, Tensor)>) {}
}

/// [N, ∏shape] → [N, shape…].
pub struct Reshape(pub Vec<usize>);

impl Module for Reshape {
    fn forward(&self, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let mut shape = vec![x.dim(0)?];
        shape.extend(&self.0);
        x.reshape(&shape)
    }
    fn named_params(&self, _prefix: &str, _out: &mut Vec<(String, Tensor)>) {}
}

/// Layers applied in order; the i-th layer's parameters are named `"{i}.…"`, as in
/// PyTorch's nn.Sequential.
#[derive(Default)]
pub struct Sequential {
    /// The layers, in the order they are applied.
    pub layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty network.
    pub fn new() -> Sequential {
        Sequential::default()
    }
    /// Appends a layer (builder style).
    pub fn layer(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }
    /// Applies layers `range` only (e.g. an encoder's first blocks, for activation maps).
    pub fn forward_range(
        &self,
        x: &Tensor,
        range: std::ops::Range<usize>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        if range.end > self.layers.len() {
            return Err(Error::argument(
                "Sequential::forward_range",
                format!("range {range:?} past {} layers", self.layers.len()),
            ));
        }
        let mut h = x.clone();
        for layer in &self.layers[range] {
            h = layer.forward(&h, ctx)?;
        }
        Ok(h)
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_range(x, 0..self.layers.len(), ctx)
    }
    fn named_params(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.named_params(&format!("{prefix}{i}."), out);
        }
    }
    fn named_buffers(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.named_buffers(&format!("{prefix}{i}."), out);
        }
    }
    fn for_each_batch_norm(&self, f: &mut dyn FnMut(&BatchNorm2d)) {
        for layer in &self.layers {
            layer.for_each_batch_norm(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_names_parameters_like_pytorch() {
        let mut rng = Rng::new(0);
        let net = Sequential::new()
            .layer(Conv2d::new(1, 4, 3, Conv2dParams::default().padding(1), &mut rng).unwrap())
            .layer(BatchNorm2d::new(4).unwrap())
            .layer(Activation::Relu)
            .layer(Flatten)
            .layer(Linear::new(4 * 5 * 5, 3, &mut rng).unwrap());
        let names: Vec<String> = state_of(&net, "encoder.")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "encoder.0.weight",
                "encoder.0.bias",
                "encoder.1.weight",
                "encoder.1.bias",
                "encoder.4.weight",
                "encoder.4.bias",
                "encoder.1.running_mean",
                "encoder.1.running_var"
            ]
        );
        let x = Tensor::randn(&[2, 1, 5, 5], 0.0, 1.0, DType::F32, &mut rng).unwrap();
        let y = net.forward(&x, &mut Ctx::train(0)).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(
            params_of(&net, "")
                .iter()
                .find(|(n, _)| n == "4.weight")
                .unwrap()
                .1
                .shape(),
            &[3, 100]
        );
    }

    #[test]
    fn pytorch_default_init_stays_in_its_bound() {
        let mut rng = Rng::new(1);
        let l = Linear::new(64, 32, &mut rng).unwrap();
        let bound = 1.0 / 8.0;
        assert!(l.weight.to_vec_f64().iter().all(|v| v.abs() <= bound));
        let spread = l
            .weight
            .to_vec_f64()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(spread > 0.9 * bound, "draws fill the interval: {spread}");
    }
}
