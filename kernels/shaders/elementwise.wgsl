// Elementwise maps, mirroring `UnaryOp::apply` and `BinaryOp::apply` in elementwise.rs.
//
// Layout: flat f32 buffers, row-major. One invocation per output element (these kernels are
// bound by memory traffic, not arithmetic, so there is nothing to tile); the 1-D index is
// folded over two grid dimensions past 65,535 workgroups.
//
// params (array<u32>):
//   unary:  [n, op, bits(c0), bits(c1)]
//   binary: [n, op, rank, out_shape[rank], a_strides[rank], b_strides[rank]]
//           (a stride of 0 repeats a broadcast axis)
//   fill:   [n, bits(value)]

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;

@group(0) @binding(1) var<storage, read_write> filled: array<f32>;

const WG: u32 = 256u;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

/// By its bits: WGSL lets a compiler assume floats are never NaN, so `v != v` may fold away.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn is_inf(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) == 0x7f800000u;
}

fn sigmoid(v: f32) -> f32 {
    // Two branches so that e^(−v) never overflows.
    if v >= 0.0 {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

fn stable_tanh(v: f32) -> f32 {
    // tanh v = sign(v)·(1 − e^(−2|v|)) / (1 + e^(−2|v|)): no overflow for large |v|.
    let t = exp(-2.0 * abs(v));
    return sign(v) * (1.0 - t) / (1.0 + t);
}

fn log1p_small(e: f32) -> f32 {
    // log(1 + e) for e in [0, 1]; the series keeps full relative precision for tiny e.
    if e < 1e-4 {
        return e - 0.5 * e * e;
    }
    return log(1.0 + e);
}

fn real_pow(v: f32, p: f32) -> f32 {
    // WGSL's pow is undefined for v < 0; Rust's powf gives (−1)^p·|v|^p for integer p.
    if p == 0.0 {
        return 1.0;
    }
    let r = pow(abs(v), p);
    if v < 0.0 {
        if p == round(p) {
            if abs(p % 2.0) == 1.0 {
                return -r;
            }
            return r;
        }
        return bitcast<f32>(0x7fc00000u); // NaN, as powf gives
    }
    return r;
}

fn apply_unary(op: u32, v: f32, c0: f32, c1: f32) -> f32 {
    // The piecewise maps (sign, relu, step, leaky mask, clamp, inside mask) give NaN for NaN,
    // as every other map does by arithmetic.
    if is_nan(v) && (op == 5u || op == 6u || op == 7u || op == 8u || op == 15u || op == 16u) {
        return v;
    }
    switch op {
        case 0u: { return -v; }
        case 1u: { return exp(v); }
        case 2u: { return log(v); }
        case 3u: { return sqrt(v); }
        case 4u: { return abs(v); }
        case 5u: { return sign(v); }
        case 6u: { return max(v, 0.0); }
        case 7u: { return select(0.0, 1.0, v > 0.0); }
        case 8u: { return select(c0, 1.0, v > 0.0); }
        case 9u: { return sigmoid(v); }
        case 10u: { return stable_tanh(v); }
        case 11u: { return max(v, 0.0) + log1p_small(exp(-abs(v))); }
        case 12u: { return real_pow(v, c0); }
        case 13u: { return v + c0; }
        case 14u: { return v * c0; }
        case 15u: { return min(max(v, c0), c1); }
        case 16u: { return select(0.0, 1.0, v > c0 && v < c1); }
        case 17u: { return select(v, 0.0, is_inf(v)); }
        default: { return v; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= params[0] {
        return;
    }
    out[i] = apply_unary(params[1], x[i], bitcast<f32>(params[2]), bitcast<f32>(params[3]));
}

fn apply_binary(op: u32, u: f32, v: f32) -> f32 {
    switch op {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: {
            if is_nan(v) {
                return v;
            }
            return select(0.0, u, v > 0.0);
        }
        default: { return u; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= params[0] {
        return;
    }
    let rank = params[2];
    // Peel the output multi-index from the innermost axis out, accumulating both offsets.
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = rank; d > 0u; d--) {
        let size = params[3u + d - 1u];
        let k = rem % size;
        rem = rem / size;
        ia += k * params[3u + rank + d - 1u];
        ib += k * params[3u + 2u * rank + d - 1u];
    }
    out2[i] = apply_binary(params[1], a[ia], b[ib]);
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= params[0] {
        return;
    }
    filled[i] = bitcast<f32>(params[1]);
}
