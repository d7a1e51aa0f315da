//! "Nothing reachable from the public API panics": every public op, called with arbitrary
//! shapes, axes, strides, paddings, dilations, groups, factors and values (zero, huge, NaN,
//! inf), returns `Ok` or an `Err`, and never panics. Each case draws one op and its arguments
//! from a proptest seed, runs it (and, when it succeeds, a backward pass through it) under
//! `catch_unwind`, and fails naming the call that panicked.
//!
//! The allocation limit is lowered to 8 MiB for this process, so shapes that are valid but
//! large are refused quickly instead of being computed.

use ferrograd_engine::{
    batch_norm, batch_norm_functional, grad, limits, BatchNormState, Conv2dParams,
    ConvTranspose2dParams, DType, Device, Pool2d, Result, Rng, Tensor,
};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Arguments drawn mostly small, sometimes at the edges.
struct Draw(Rng);

impl Draw {
    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.0.below(options.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.uniform() < p
    }
    /// A size: usually 0–5, sometimes huge.
    fn size(&mut self) -> usize {
        if self.chance(0.08) {
            self.pick(&[
                1 << 20,
                1 << 31,
                1 << 32,
                (1 << 62) + 1,
                usize::MAX / 2 + 1,
                usize::MAX,
            ])
        } else {
            self.pick(&[0, 1, 1, 2, 2, 3, 3, 4, 5])
        }
    }
    /// A positive-ish parameter (kernel, stride, dilation, groups, factor): usually 0–3.
    fn param(&mut self) -> usize {
        if self.chance(0.1) {
            self.pick(&[1 << 16, 1 << 32, usize::MAX / 2 + 1, usize::MAX])
        } else {
            self.pick(&[0, 1, 1, 1, 2, 2, 3])
        }
    }
    fn axis(&mut self) -> isize {
        if self.chance(0.1) {
            self.pick(&[isize::MIN, isize::MAX, -9, 9])
        } else {
            self.pick(&[-3, -2, -1, 0, 0, 1, 1, 2, 3])
        }
    }
    fn shape(&mut self) -> Vec<usize> {
        let rank = self.pick(&[0, 1, 1, 2, 2, 3, 3, 4, 4, 5]);
        (0..rank).map(|_| self.size()).collect()
    }
    /// A small shape whose tensor can be built (every size 0–4), sometimes with a huge size
    /// beside a zero.
    fn small_shape(&mut self, rank: usize) -> Vec<usize> {
        let mut shape: Vec<usize> = (0..rank)
            .map(|_| self.pick(&[0, 1, 2, 2, 3, 3, 4]))
            .collect();
        if rank > 1 && shape.contains(&0) && self.chance(0.2) {
            let i = self.0.below(rank);
            if shape[i] != 0 {
                shape[i] = self.pick(&[1 << 31, 1 << 40]);
            }
        }
        shape
    }
    fn value(&mut self) -> f64 {
        self.pick(&[
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e30,
            -1e-30,
            f64::MAX,
            f64::MIN_POSITIVE,
        ])
    }
    fn dtype(&mut self) -> DType {
        self.pick(&[DType::F32, DType::F64])
    }
    /// A tensor of a small shape and random rank, requiring gradients or not; now and then
    /// an empty one with huge other sizes ([0, 2⁴⁰, 3]).
    fn tensor(&mut self, device: Device) -> Tensor {
        let rank = self.pick(&[0, 1, 2, 3, 4]);
        let mut shape = self.small_shape(rank);
        if rank > 1 && self.chance(0.1) {
            let zero = self.0.below(rank);
            shape[zero] = 0;
            let huge = self.0.below(rank);
            if huge != zero {
                shape[huge] = self.pick(&[1 << 31, 1 << 40, 1 << 62]);
            }
        }
        self.tensor_of(&shape, device)
    }
    /// A tensor of `shape`, or of `shape` with its largest size set to 0 if it would hold
    /// more than 10⁴ values.
    fn tensor_of(&mut self, shape: &[usize], device: Device) -> Tensor {
        let mut shape = shape.to_vec();
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count.is_none_or(|n| n > 10_000) {
            let largest = (0..shape.len())
                .max_by_key(|&i| shape[i])
                .expect("rank > 0");
            shape[largest] = 0;
        }
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n)
            .map(|_| {
                if self.chance(0.8) {
                    self.0.normal()
                } else {
                    self.value()
                }
            })
            .collect();
        let dtype = if device == Device::Gpu {
            DType::F32
        } else {
            self.dtype()
        };
        // A shape too large to address is refused; its sizes over 4 then become 1.
        let t = Tensor::from_f64s(&values, &shape, dtype)
            .or_else(|_| {
                let tame: Vec<usize> = shape.iter().map(|&d| if d > 4 { 1 } else { d }).collect();
                Tensor::from_f64s(&values, &tame, dtype)
            })
            .expect("small shapes hold their values")
            .to(device)
            .expect("f32 tensors move to the device");
        if self.chance(0.7) {
            t.requires_grad_()
        } else {
            t
        }
    }
    fn axes(&mut self) -> Vec<isize> {
        let n = self.pick(&[0, 1, 1, 2, 3]);
        (0..n).map(|_| self.axis()).collect()
    }
    fn pairs(&mut self, n: usize) -> Vec<(usize, usize)> {
        (0..n).map(|_| (self.size(), self.size())).collect()
    }
}

/// One drawn call: a description and the call itself.
type Call = (String, Box<dyn FnOnce() -> Result<Tensor>>);

/// Draws one op of the public API with its arguments.
fn draw_call(d: &mut Draw, device: Device) -> Call {
    let x = d.tensor(device);
    let op = d.0.below(60);
    macro_rules! call {
        ($($fmt:tt)*) => { format!($($fmt)*) };
    }
    match op {
        0 => {
            let shape = d.shape();
            let (v, t) = (d.value(), d.dtype());
            (
                call!("Tensor::full({shape:?}, {v}, {t})"),
                Box::new(move || Tensor::full(&shape, v, t)),
            )
        }
        1 => {
            let shape = d.shape();
            let t = d.dtype();
            let seed = d.0.next_u64();
            (
                call!("Tensor::randn({shape:?}) / rand_uniform"),
                Box::new(move || {
                    let mut rng = Rng::new(seed);
                    Tensor::randn(&shape, 0.0, 1.0, t, &mut rng)?;
                    Tensor::rand_uniform(&shape, -1.0, 1.0, t, &mut rng)
                }),
            )
        }
        2 => {
            let (a, b, c) = (d.value(), d.value(), d.value());
            (
                call!("Tensor::arange({a}, {b}, {c})"),
                Box::new(move || Tensor::arange(a, b, c, DType::F32)),
            )
        }
        3 => {
            let shape = d.shape();
            let len = d.pick(&[0usize, 1, 2, 6, 12]);
            (
                call!("Tensor::from_f64s({len} values, {shape:?})"),
                Box::new(move || Tensor::from_f64s(&vec![1.0; len], &shape, DType::F64)),
            )
        }
        4 => {
            let shape = d.shape();
            let t = d.dtype();
            (
                call!("Tensor::full_on({shape:?}, {device})"),
                Box::new(move || Tensor::full_on(&shape, 2.0, t, device)),
            )
        }
        5..=12 => {
            let which = op - 5;
            let c = d.value();
            let names = [
                "neg", "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh",
            ];
            (
                call!("{:?}.{}()", x.shape(), names[which]),
                Box::new(move || match which {
                    0 => x.neg(),
                    1 => x.exp(),
                    2 => x.log(),
                    3 => x.sqrt(),
                    4 => x.abs(),
                    5 => x.relu(),
                    6 => x.sigmoid(),
                    _ => x.tanh()?.add_scalar(c),
                }),
            )
        }
        13 => {
            let (a, b) = (d.value(), d.value());
            (
                call!(
                    "{:?}: softplus, powf({a}), clamp({a}, {b}), leaky_relu({b}), elu({a})",
                    x.shape()
                ),
                Box::new(move || {
                    x.softplus()?;
                    let _ = x.powf(a);
                    let _ = x.clamp(a, b);
                    let _ = x.leaky_relu(b);
                    let _ = x.div_scalar(b);
                    let _ = (x.sin(), x.cos(), x.log1p(), x.expm1(), x.rsqrt(), x.erf());
                    let _ = (x.gelu(), x.gelu_tanh(), x.silu());
                    x.elu(a)?.mul_scalar(b)
                }),
            )
        }
        14..=18 => {
            let y = if d.chance(0.5) {
                d.tensor(device)
            } else {
                let mut s = x.shape().to_vec();
                for v in s.iter_mut() {
                    if d.chance(0.3) {
                        *v = 1;
                    }
                }
                d.tensor_of(&s, device)
            };
            let which = op - 14;
            (
                call!("{:?} binary op {which} with {:?}", x.shape(), y.shape()),
                Box::new(move || match which {
                    0 => x.add(&y),
                    1 => x.sub(&y),
                    2 => x.mul(&y),
                    3 => x.div(&y),
                    _ => {
                        let _ = (x.maximum(&y), x.minimum(&y), x.where_(&y, &x));
                        let _ = y.where_(&x, &y);
                        x.relu_backward(&y)
                    }
                }),
            )
        }
        19..=23 => {
            let axes = d.axes();
            let keep = d.chance(0.5);
            let which = op - 19;
            (
                call!(
                    "{:?} reduction {which} over {axes:?} keepdim {keep}",
                    x.shape()
                ),
                Box::new(move || match which {
                    0 => x.sum(&axes, keep),
                    1 => x.mean(&axes, keep),
                    2 => x.max(&axes, keep),
                    3 => x.logsumexp(&axes, keep),
                    _ => {
                        let _ = (x.min(&axes, keep), x.prod(&axes, keep));
                        let _ = (x.var_with(&axes, true, keep), x.std(&axes, keep, keep));
                        if let Some(&a) = axes.first() {
                            let _ = (x.argmax(a), x.argmin(a));
                        }
                        x.var(&axes, keep)
                    }
                }),
            )
        }
        24 => (
            call!("{:?}.sum_all / mean_all / max_all", x.shape()),
            Box::new(move || {
                let _ = x.max_all();
                let _ = (x.min_all(), x.prod_all());
                x.mean_all()?;
                x.sum_all()
            }),
        ),
        25 => {
            let shape = if d.chance(0.5) {
                d.shape()
            } else {
                x.shape()
                    .iter()
                    .map(|&v| if d.chance(0.4) { 1 } else { v })
                    .collect()
            };
            (
                call!("{:?}.sum_to({shape:?}) / broadcast_to", x.shape()),
                Box::new(move || {
                    let _ = x.broadcast_to(&shape);
                    x.sum_to(&shape)
                }),
            )
        }
        26 => {
            let shape = d.shape();
            (
                call!("{:?}.reshape({shape:?})", x.shape()),
                Box::new(move || x.reshape(&shape)),
            )
        }
        27 => {
            let (a, b) = (d.axis(), d.axis());
            let perm: Vec<usize> = (0..d.pick(&[0, 1, 2, 3, 4])).map(|_| d.param()).collect();
            (
                call!(
                    "{:?}: unsqueeze({a}), flatten({a}), permute({perm:?}), transpose({b}, {b})",
                    x.shape()
                ),
                Box::new(move || {
                    let _ = x.unsqueeze(a);
                    let _ = x.flatten(a);
                    let _ = x.transpose(b, -1);
                    let _ = x.dim(b);
                    x.permute(&perm)
                }),
            )
        }
        28 => {
            let n = d.pick(&[0, 1, 2, 5, 1 << 20]);
            let idx: Vec<usize> = (0..n.min(8)).map(|_| d.size()).collect();
            let out_shape = d.shape();
            (
                call!(
                    "{:?}.gather_flat({idx:?}) / scatter_add_flat to {out_shape:?}",
                    x.shape()
                ),
                Box::new(move || {
                    let idx = Arc::new(idx);
                    let _ = x.gather_flat(idx.clone(), &out_shape);
                    x.scatter_add_flat(idx, &out_shape)
                }),
            )
        }
        29 => {
            let ranges = d.pairs(x.rank());
            let pads = d.pairs(x.rank());
            let (axis, start, len) = (d.axis(), d.size(), d.size());
            (
                call!(
                    "{:?}.slice({ranges:?}) / pad({pads:?}) / narrow({axis}, {start}, {len})",
                    x.shape()
                ),
                Box::new(move || {
                    let _ = x.narrow(axis, start, len);
                    let _ = x.slice(&ranges);
                    x.pad(&pads)
                }),
            )
        }
        30 => {
            let others: Vec<Tensor> = (0..d.pick(&[0, 1, 2])).map(|_| d.tensor(device)).collect();
            let axis = d.axis();
            let shapes: Vec<Vec<usize>> = others.iter().map(|t| t.shape().to_vec()).collect();
            (
                call!(
                    "concat/stack of {:?} and {shapes:?} on axis {axis}",
                    x.shape()
                ),
                Box::new(move || {
                    let mut all = vec![x.clone()];
                    all.extend(others);
                    let refs: Vec<&Tensor> = all.iter().collect();
                    let _ = Tensor::stack(&refs, axis);
                    let _ = Tensor::concat(&all[..0], axis);
                    Tensor::concat(&all, axis)
                }),
            )
        }
        31 => {
            let axis = d.axis();
            let picks: Vec<usize> = (0..d.pick(&[0, 1, 3])).map(|_| d.size()).collect();
            let (index, src) = (d.tensor(device), d.tensor(device));
            (
                call!(
                    "{:?}.index_select({axis}, {picks:?}) / gather / scatter_add with index {:?} {:?}",
                    x.shape(),
                    index.shape(),
                    index.to_vec_f64()
                ),
                Box::new(move || {
                    let _ = x.gather(axis, &index);
                    let _ = x.scatter_add(axis, &index, &src);
                    x.index_select(axis, &picks)
                }),
            )
        }
        32..=34 => {
            let (ta, tb) = (d.chance(0.5), d.chance(0.5));
            let y = if d.chance(0.5) {
                d.tensor(device)
            } else {
                let mut s = x.shape().to_vec();
                s.reverse();
                d.tensor_of(&s, device)
            };
            (
                call!("{:?}.matmul_t({:?}, {ta}, {tb})", x.shape(), y.shape()),
                Box::new(move || x.matmul_t(&y, ta, tb)),
            )
        }
        35..=39 => {
            let x = {
                let s = d.small_shape(4);
                d.tensor_of(&s, device)
            };
            let transposed = op >= 38;
            let c = x.shape()[1];
            let groups = if d.chance(0.6) {
                d.pick(&[1, 1, 2, c.max(1)])
            } else {
                d.param()
            };
            let wshape = if d.chance(0.7) {
                let k = d.pick(&[0, 1, 2, 3, 4]);
                let (r, s) = (d.pick(&[0, 1, 2, 3]), d.pick(&[1, 2, 3]));
                if transposed {
                    vec![c, k, r, s]
                } else {
                    vec![k, c / groups.max(1), r, s]
                }
            } else {
                let rank = d.pick(&[3, 4, 4]);
                d.small_shape(rank)
            };
            let w = d.tensor_of(&wshape, device);
            let bias = d.chance(0.3).then(|| {
                let k = d.pick(&[0, 1, 2, 4]);
                d.tensor_of(&[k], device)
            });
            let (stride, pad, dil, outpad) = (
                (d.param(), d.param()),
                (d.param().min(d.size()), d.param()),
                (d.param(), d.param()),
                (d.param(), d.param()),
            );
            (
                call!(
                    "{:?} conv (transposed {transposed}) weight {:?} bias {:?} stride {stride:?} pad {pad:?} dil {dil:?} groups {groups} output_padding {outpad:?}",
                    x.shape(),
                    w.shape(),
                    bias.as_ref().map(|b| b.shape().to_vec())
                ),
                Box::new(move || {
                    if transposed {
                        let p = ConvTranspose2dParams {
                            stride,
                            padding: pad,
                            output_padding: outpad,
                            dilation: dil,
                            groups,
                        };
                        x.conv_transpose2d(&w, bias.as_ref(), p)
                    } else {
                        let p = Conv2dParams {
                            stride,
                            padding: pad,
                            dilation: dil,
                            groups,
                        };
                        x.conv2d(&w, bias.as_ref(), p)
                    }
                }),
            )
        }
        40..=43 => {
            let x = {
                let s = d.small_shape(4);
                d.tensor_of(&s, device)
            };
            let (k, s, p) = (d.param(), d.param(), d.param());
            let which = op - 40;
            let opts = Pool2d::new_hw(d.param(), d.param())
                .stride_hw(d.param(), d.param())
                .padding_hw(d.param(), d.param())
                .dilation_hw(d.param(), d.param())
                .ceil_mode(d.chance(0.5))
                .count_include_pad(d.chance(0.5));
            (
                call!(
                    "{:?} pool {which}: kernel {k} stride {s} padding {p} / {opts:?}",
                    x.shape()
                ),
                Box::new(move || match which {
                    0 => {
                        let _ = x.max_pool2d_with(&opts);
                        x.max_pool2d(k, s, p)
                    }
                    1 => {
                        let _ = x.avg_pool2d_with(&opts);
                        x.avg_pool2d(k, s, p)
                    }
                    2 => {
                        let _ = x.global_avg_pool2d();
                        x.upsample_nearest2d(k)
                    }
                    _ => x.pixel_shuffle(k),
                }),
            )
        }
        44 => {
            let axis = d.axis();
            (
                call!("{:?}.softmax({axis}) / log_softmax", x.shape()),
                Box::new(move || {
                    let _ = x.log_softmax(axis);
                    x.softmax(axis)
                }),
            )
        }
        45 => {
            let labels: Vec<usize> = (0..d.pick(&[0, 1, 2, 3])).map(|_| d.size()).collect();
            (
                call!("{:?}.cross_entropy({labels:?})", x.shape()),
                Box::new(move || x.cross_entropy(&labels)),
            )
        }
        46 => {
            let y = if d.chance(0.7) {
                let s = x.shape().to_vec();
                d.tensor_of(&s, device)
            } else {
                d.tensor(device)
            };
            (
                call!("{:?} losses against {:?}", x.shape(), y.shape()),
                Box::new(move || {
                    let _ = x.binary_cross_entropy_with_logits(&y);
                    let _ = x.l1_loss(&y);
                    x.mse_loss(&y)
                }),
            )
        }
        47 => {
            let (p, training, seed) = (d.value(), d.chance(0.5), d.0.next_u64());
            (
                call!("{:?}.dropout({p}, {training})", x.shape()),
                Box::new(move || {
                    let _ = x.dropout_with_mask(p, &mut Rng::new(seed));
                    x.dropout(p, training, &mut Rng::new(seed))
                }),
            )
        }
        48..=50 => {
            let x = {
                let rank = d.pick(&[2, 4, 4, 3]);
                let s = d.small_shape(rank);
                d.tensor_of(&s, device)
            };
            let c = x.shape().get(1).copied().unwrap_or(0);
            let cs = if d.chance(0.8) { c } else { d.pick(&[0, 1, 5]) };
            let (gamma, beta) = (d.tensor_of(&[cs], device), d.tensor_of(&[cs], device));
            let stats = d.chance(0.6).then(|| {
                let cr = if d.chance(0.8) { c } else { d.pick(&[0, 1, 5]) };
                (
                    d.tensor_of(&[cr], device).detach(),
                    d.tensor_of(&[cr], device).detach(),
                )
            });
            let (training, eps, momentum) = (d.chance(0.5), d.value(), d.value());
            (
                call!(
                    "batch_norm {:?} gamma [{cs}] stats {:?} training {training} eps {eps} momentum {momentum}",
                    x.shape(),
                    stats.as_ref().map(|s| s.0.shape().to_vec())
                ),
                Box::new(move || {
                    let running = stats.as_ref().map(|(m, v)| (m, v));
                    let _ = batch_norm_functional(&x, &gamma, &beta, running, training, momentum, eps);
                    let state = stats.as_ref().map(|(m, v)| BatchNormState {
                        running_mean: m,
                        running_var: v,
                        momentum,
                    });
                    batch_norm(&x, &gamma, &beta, state, training, eps)
                }),
            )
        }
        51 => {
            let y = d.tensor(device);
            let create = d.chance(0.5);
            (
                call!(
                    "grad of {:?}·{:?} with create_graph {create}",
                    x.shape(),
                    y.shape()
                ),
                Box::new(move || {
                    let z = x.mul(&y)?.sum_all()?;
                    let gs = grad(&[&z], &[&x, &y], None, create)?;
                    let _ = grad(&[&gs[0]], &[&x], None, false);
                    let _ = grad(&[], &[&x], None, false);
                    let _ = z.item();
                    Ok(gs[0].clone())
                }),
            )
        }
        52 => {
            let t = d.dtype();
            (
                call!("{:?}.to_dtype({t}) / to(cpu) / detach", x.shape()),
                Box::new(move || x.to_dtype(t)?.to(Device::Cpu)),
            )
        }
        _ => {
            // A chain of two random unary steps, to reach ops on the results of others.
            let which = d.0.below(4);
            (
                call!("{:?} chain {which}", x.shape()),
                Box::new(move || {
                    let y = match which {
                        0 => x.exp()?.log()?,
                        1 => x.relu()?.sqrt()?,
                        2 => x.tanh()?.abs()?,
                        _ => x.sigmoid()?.neg()?,
                    };
                    y.mean_all()
                }),
            )
        }
    }
}

thread_local! {
    /// Where the last panic inside [`run`] happened (file:line: message).
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside [`run`] are recorded with their location instead of printed; others go to
/// the default hook (so proptest's own failure report is still shown).
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(|c| c.get()) {
                let place = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{place}: {message}")));
            } else {
                default(info);
            }
        }));
    });
}

/// The case being run and when it started: a watchdog thread ends the process, naming the
/// case, if one runs for more than a minute (a loop over a huge kernel is a hang, not a pass).
static CURRENT: std::sync::Mutex<Option<(std::time::Instant, String)>> =
    std::sync::Mutex::new(None);

fn start_watchdog() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((start, what)) = &*current {
                if start.elapsed().as_secs() > 60 {
                    eprintln!("hang: {what} has run for over a minute");
                    std::process::exit(101);
                }
            }
        });
    });
}

/// Runs a drawn call and, if it succeeds, a backward pass through it and a read of its values.
fn run(call: Call) -> std::result::Result<(), String> {
    install_hook();
    start_watchdog();
    let (what, f) = call;
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), what.clone()));
    CATCHING.with(|c| c.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let result = f();
        if result.is_ok() {
            SUCCEEDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Ok(y) = result {
            let _ = y.to_vec_f64();
            if y.requires_grad() {
                if let Ok(s) = y.sum_all() {
                    let _ = s.backward();
                    let _ = s.backward_with(None, true);
                }
            }
        }
    }));
    CATCHING.with(|c| c.set(false));
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    outcome.map_err(|_| {
        let place = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_default();
        format!("{what} panicked at {place}")
    })
}

/// Calls that returned `Ok` (the survey reports the share: a fuzzer whose calls all fail
/// their argument checks explores nothing).
static SUCCEEDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn setup() {
    limits::set_allocation_limit(8 << 20);
}

/// Not a test: `cargo test -p ferrograd-engine --test no_panic -- --ignored survey` runs many
/// seeds (`SURVEY_CASES`, on `SURVEY_DEVICE=cpu|gpu`) and lists each distinct panic site
/// once, to fix them all in one pass.
#[test]
#[ignore]
fn survey() {
    setup();
    let cases: u64 = std::env::var("SURVEY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let device = match std::env::var("SURVEY_DEVICE").as_deref() {
        Ok("gpu") => Device::gpu().expect("SURVEY_DEVICE=gpu needs a GPU"),
        _ => Device::Cpu,
    };
    let mut sites = std::collections::BTreeMap::new();
    for seed in 0..cases {
        let mut d = Draw(Rng::new(seed));
        if let Err(why) = run(draw_call(&mut d, device)) {
            let site = why.rsplit(" panicked at ").next().unwrap_or("").to_string();
            let key = site.split(": ").next().unwrap_or("").to_string();
            sites.entry(key).or_insert(format!("seed {seed}: {why}"));
        }
    }
    for example in sites.values() {
        println!("{example}");
    }
    println!(
        "{} of {cases} calls returned Ok",
        SUCCEEDED.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(sites.is_empty(), "{} distinct panic sites", sites.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8000))]

    #[test]
    fn no_public_op_panics_on_the_cpu(seed in any::<u64>()) {
        setup();
        let mut d = Draw(Rng::new(seed));
        let call = draw_call(&mut d, Device::Cpu);
        if let Err(why) = run(call) {
            prop_assert!(false, "seed {seed}: {why}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// The same on the GPU (skipped without one, unless `FERROGRAD_REQUIRE_GPU=1`).
    #[test]
    fn no_public_op_panics_on_the_gpu(seed in any::<u64>()) {
        let device = match Device::gpu() {
            Ok(d) => d,
            Err(e) if std::env::var("FERROGRAD_REQUIRE_GPU").as_deref() != Ok("1") => {
                eprintln!("skipped: {e}");
                return Ok(());
            }
            Err(e) => panic!("FERROGRAD_REQUIRE_GPU=1 but there is no GPU: {e}"),
        };
        setup();
        let mut d = Draw(Rng::new(seed));
        let call = draw_call(&mut d, device);
        if let Err(why) = run(call) {
            prop_assert!(false, "seed {seed}: {why}");
        }
    }
}
