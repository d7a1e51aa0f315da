//! Evaluates small op programs given as JSON lines, for differential testing against an
//! autodiff this project did not write (`benches/torch_difftest.py` drives it against PyTorch).
//!
//! Each stdin line is one program:
//!
//! ```json
//! {"id": 3, "inputs": [{"shape": [2, 3], "values": [..]}],
//!  "ops": [{"op": "exp", "args": [0]}, {"op": "sum", "args": [1], "axes": [1], "keepdim": false}],
//!  "order": 3, "u": [..], "v1": [[..]], "v2": [[..]]}
//! ```
//!
//! Values are numbered: the inputs first, then each op's result; the last is the output y.
//! With u, v1, v2 fixed directions, the derivatives of orders 1–3 are
//! g1 = ∂⟨y, u⟩/∂x, g2 = ∂(Σᵢ⟨g1ᵢ, v1ᵢ⟩)/∂x and g3 = ∂(Σᵢ⟨g2ᵢ, v2ᵢ⟩)/∂x, each with respect to
//! every x among the values numbered in `"wrt"` (the inputs when absent), in f64 (`--device gpu`: f32 on the GPU). Each output line is
//! `{"id": 3, "y": [..], "g1": [[..]], "g2": [[..]], "g3": [[..]]}` or `{"id": 3, "error": ".."}`.
//!
//! ```sh
//! python3 benches/torch_difftest.py --programs 2000   # builds and runs this example
//! ```

use ferrograd::engine::{
    batch_norm, grad_with, Conv2dParams, ConvTranspose2dParams, DType, Device, Error, GradOptions,
    Result, Tensor,
};
use serde_json::{json, Value};
use std::io::{BufRead, Write};

fn usizes(v: &Value, key: &str) -> Vec<usize> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_default()
}

fn isizes(v: &Value, key: &str) -> Vec<isize> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_i64)
                .map(|x| x as isize)
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(v: &Value, key: &str) -> Vec<(usize, usize)> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap_or(0) as usize,
                        p[1].as_u64().unwrap_or(0) as usize,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

fn size(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or(0) as usize
}

fn pair(v: &Value, key: &str) -> (usize, usize) {
    let p = usizes(v, key);
    match p.as_slice() {
        [a, b] => (*a, *b),
        [a] => (*a, *a),
        _ => (0, 0),
    }
}

fn bad(what: String) -> Error {
    Error::argument("program", what)
}

/// One op of a program, on the values computed so far.
fn apply(op: &Value, values: &[Tensor]) -> Result<Tensor> {
    let name = op["op"].as_str().unwrap_or("");
    let args: Vec<&Tensor> = usizes(op, "args")
        .into_iter()
        .map(|i| values.get(i).ok_or_else(|| bad(format!("no value {i}"))))
        .collect::<Result<_>>()?;
    let a = || {
        args.first()
            .copied()
            .ok_or_else(|| bad("no argument".into()))
    };
    let b = || {
        args.get(1)
            .copied()
            .ok_or_else(|| bad("no second argument".into()))
    };
    let axes = || isizes(op, "axes");
    let keep = op["keepdim"].as_bool().unwrap_or(false);
    match name {
        "neg" => a()?.neg(),
        "exp" => a()?.exp(),
        "log" => a()?.log(),
        "sqrt" => a()?.sqrt(),
        "abs" => a()?.abs(),
        "relu" => a()?.relu(),
        "sigmoid" => a()?.sigmoid(),
        "tanh" => a()?.tanh(),
        "softplus" => a()?.softplus(),
        "leaky_relu" => a()?.leaky_relu(num(op, "slope")),
        "elu" => a()?.elu(num(op, "alpha")),
        "powf" => a()?.powf(num(op, "p")),
        "clamp" => a()?.clamp(num(op, "lo"), num(op, "hi")),
        "add_scalar" => a()?.add_scalar(num(op, "c")),
        "mul_scalar" => a()?.mul_scalar(num(op, "c")),
        "add" => a()?.add(b()?),
        "sub" => a()?.sub(b()?),
        "mul" => a()?.mul(b()?),
        "div" => a()?.div(b()?),
        "sum" => a()?.sum(&axes(), keep),
        "mean" => a()?.mean(&axes(), keep),
        "max" => a()?.max(&axes(), keep),
        "logsumexp" => a()?.logsumexp(&axes(), keep),
        "var" => a()?.var(&axes(), keep),
        "sum_all" => a()?.sum_all(),
        "mean_all" => a()?.mean_all(),
        "reshape" => a()?.reshape(&usizes(op, "shape")),
        "permute" => a()?.permute(&usizes(op, "perm")),
        "transpose" => a()?.transpose(
            op["a"].as_i64().unwrap_or(0) as isize,
            op["b"].as_i64().unwrap_or(0) as isize,
        ),
        "broadcast_to" => a()?.broadcast_to(&usizes(op, "shape")),
        "unsqueeze" => a()?.unsqueeze(op["axis"].as_i64().unwrap_or(0) as isize),
        "flatten" => a()?.flatten(op["start"].as_i64().unwrap_or(0) as isize),
        "slice" => a()?.slice(&pairs(op, "ranges")),
        "pad" => a()?.pad(&pairs(op, "pads")),
        "concat" => Tensor::concat(&args, op["axis"].as_i64().unwrap_or(0) as isize),
        "stack" => Tensor::stack(&args, op["axis"].as_i64().unwrap_or(0) as isize),
        "index_select" => a()?.index_select(
            op["axis"].as_i64().unwrap_or(0) as isize,
            &usizes(op, "indices"),
        ),
        "matmul" => a()?.matmul_t(
            b()?,
            op["ta"].as_bool().unwrap_or(false),
            op["tb"].as_bool().unwrap_or(false),
        ),
        "conv2d" => a()?.conv2d(
            b()?,
            args.get(2).copied(),
            Conv2dParams {
                stride: pair(op, "stride"),
                padding: pair(op, "padding"),
                dilation: pair(op, "dilation"),
                groups: size(op, "groups"),
            },
        ),
        "conv_transpose2d" => a()?.conv_transpose2d(
            b()?,
            args.get(2).copied(),
            ConvTranspose2dParams {
                stride: pair(op, "stride"),
                padding: pair(op, "padding"),
                output_padding: pair(op, "output_padding"),
                dilation: pair(op, "dilation"),
                groups: size(op, "groups"),
            },
        ),
        "max_pool2d" => a()?.max_pool2d(size(op, "k"), size(op, "s"), size(op, "p")),
        "avg_pool2d" => a()?.avg_pool2d(size(op, "k"), size(op, "s"), size(op, "p")),
        "global_avg_pool2d" => a()?.global_avg_pool2d(),
        "upsample_nearest2d" => a()?.upsample_nearest2d(size(op, "scale")),
        "pixel_shuffle" => a()?.pixel_shuffle(size(op, "r")),
        "softmax" => a()?.softmax(op["axis"].as_i64().unwrap_or(-1) as isize),
        "log_softmax" => a()?.log_softmax(op["axis"].as_i64().unwrap_or(-1) as isize),
        "cross_entropy" => a()?.cross_entropy(&usizes(op, "labels")),
        "bce_with_logits" => a()?.binary_cross_entropy_with_logits(b()?),
        "mse_loss" => a()?.mse_loss(b()?),
        "l1_loss" => a()?.l1_loss(b()?),
        "batch_norm" => {
            let gamma = b()?;
            let beta = args.get(2).copied().ok_or_else(|| bad("no beta".into()))?;
            batch_norm(a()?, gamma, beta, None, true, num(op, "eps"))
        }
        other => Err(bad(format!("unknown op {other}"))),
    }
}

/// Σᵢ ∂⟨outᵢ, dirᵢ⟩/∂x for every x, zeros where unused (or where out is a constant).
fn directional_grad(
    outs: &[Tensor],
    dirs: &[Tensor],
    xs: &[Tensor],
    create_graph: bool,
) -> Result<Vec<Tensor>> {
    let mut total: Option<Tensor> = None;
    for (o, d) in outs.iter().zip(dirs) {
        if !o.requires_grad() {
            continue;
        }
        let term = o.mul(d)?.sum_all()?;
        total = Some(match total {
            Some(t) => t.add(&term)?,
            None => term,
        });
    }
    let Some(total) = total else {
        return Ok(xs.iter().map(Tensor::zeros_like).collect());
    };
    let options = GradOptions {
        grad_outputs: None,
        create_graph,
        allow_unused: true,
    };
    let gs = grad_with(&[&total], &xs.iter().collect::<Vec<_>>(), options)?;
    Ok(gs
        .into_iter()
        .zip(xs)
        .map(|(g, x)| g.unwrap_or_else(|| x.zeros_like()))
        .collect())
}

fn tensor_from(v: &Value, shape: &[usize], device: Device) -> Result<Tensor> {
    let values: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default();
    let dtype = if device == Device::Gpu {
        DType::F32
    } else {
        DType::F64
    };
    Tensor::from_f64s(&values, shape, dtype)?.to(device)
}

fn run(program: &Value, device: Device) -> Result<Value> {
    let inputs: Vec<Tensor> = program["inputs"]
        .as_array()
        .ok_or_else(|| bad("no inputs".into()))?
        .iter()
        .map(|i| Ok(tensor_from(&i["values"], &usizes(i, "shape"), device)?.requires_grad_()))
        .collect::<Result<_>>()?;
    let mut values = inputs;
    for op in program["ops"].as_array().into_iter().flatten() {
        let out = apply(op, &values)?;
        values.push(out);
    }
    let y = values.last().expect("inputs are values").clone();
    // The tensors to differentiate with respect to: values by number (the inputs by default).
    let wrt: Vec<Tensor> = match program["wrt"].as_array() {
        Some(_) => usizes(program, "wrt")
            .into_iter()
            .map(|i| {
                values
                    .get(i)
                    .cloned()
                    .ok_or_else(|| bad(format!("no value {i}")))
            })
            .collect::<Result<_>>()?,
        None => values[..program["inputs"].as_array().map_or(0, Vec::len)].to_vec(),
    };
    let inputs = wrt;
    let order = program["order"].as_u64().unwrap_or(1) as usize;
    let dirs = |key: &str| -> Result<Vec<Tensor>> {
        program[key]
            .as_array()
            .into_iter()
            .flatten()
            .zip(&inputs)
            .map(|(d, x)| tensor_from(d, x.shape(), device))
            .collect()
    };
    let u = tensor_from(&program["u"], y.shape(), device)?;
    let flat = |ts: &[Tensor]| -> Vec<Vec<f64>> { ts.iter().map(Tensor::to_vec_f64).collect() };
    let mut out = json!({"id": program["id"], "y": y.to_vec_f64()});
    let g1 = directional_grad(std::slice::from_ref(&y), &[u], &inputs, order >= 2)?;
    out["g1"] = json!(flat(&g1));
    if order >= 2 {
        let g2 = directional_grad(&g1, &dirs("v1")?, &inputs, order >= 3)?;
        out["g2"] = json!(flat(&g2));
        if order >= 3 {
            let g3 = directional_grad(&g2, &dirs("v2")?, &inputs, false)?;
            out["g3"] = json!(flat(&g3));
        }
    }
    Ok(out)
}

fn main() {
    let device = match std::env::args().skip_while(|a| a != "--device").nth(1) {
        Some(name) => Device::parse(&name).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
        None => Device::Cpu,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(program) => run(&program, device)
                .unwrap_or_else(|e| json!({"id": program["id"], "error": e.to_string()})),
            Err(e) => json!({"error": format!("not JSON: {e}")}),
        };
        // NaN and infinities are not JSON numbers: serde_json writes null, read back as NaN.
        let _ = writeln!(out, "{answer}");
    }
}
