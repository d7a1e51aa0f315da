// Elementwise maps, mirroring `UnaryOp::apply` and `BinaryOp::apply` in elementwise.rs.
//
// Layout: flat f32 buffers, row-major. One invocation per output element (these kernels are
// bound by memory traffic, not arithmetic, so there is nothing to tile); the 1-D index is
// folded over two grid dimensions past 65,535 workgroups.
//
// Parameters: UnaryParams, BinaryParams (tail: out_shape[rank], a_strides[rank],
// b_strides[rank], a stride of 0 repeating a broadcast axis) and FillParams, declared with the
// op codes UNARY_* and BINARY_* in the prelude generated from kernels/src/gpu/params.rs.

@group(0) @binding(0) var<storage, read> up: UnaryParams;
@group(0) @binding(0) var<storage, read> bp: BinaryParams;
@group(0) @binding(0) var<storage, read> fp: FillParams;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;

@group(0) @binding(1) var<storage, read_write> filled: array<f32>;

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

fn log1p_any(v: f32) -> f32 {
    // log(1 + v) to full relative precision for small v: log(u)·v/(u − 1) with u = 1 + v
    // corrects the rounding of u (Goldberg's trick).
    let u = 1.0 + v;
    if u == 1.0 || is_inf(u) {
        return select(log(u), v, u == 1.0);
    }
    return log(u) * v / (u - 1.0);
}

fn expm1_any(v: f32) -> f32 {
    // eᵛ − 1 to full relative precision for small v: (u − 1)·v/log(u) with u = eᵛ (Kahan).
    let u = exp(v);
    if u == 1.0 {
        return v;
    }
    let um1 = u - 1.0;
    if um1 == -1.0 || is_inf(u) {
        return um1;
    }
    return um1 * v / log(u);
}

fn erf_approx(v: f32) -> f32 {
    let z = abs(v);
    if z < 0.5 {
        // Maclaurin series to x¹¹ (next term below 3e-8 relative): full relative precision
        // near 0, where 1 − (the rational form below) would cancel.
        let q = v * v;
        let s = 1.0 + q * (-1.0 / 3.0 + q * (0.1 + q * (-1.0 / 42.0 + q * (1.0 / 216.0
            + q * (-1.0 / 1320.0)))));
        return 1.1283791670955126 * v * s;
    }
    // Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, about f32's rounding.
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-z * z);
    return select(r, -r, v < 0.0);
}

fn apply_unary(op: u32, v: f32, c0: f32, c1: f32) -> f32 {
    // The piecewise maps (sign, relu, step, leaky mask, clamp, inside mask) give NaN for NaN,
    // as every other map does by arithmetic.
    if is_nan(v) && (op == UNARY_SIGN || op == UNARY_RELU || op == UNARY_STEP
        || op == UNARY_LEAKY_MASK || op == UNARY_CLAMP || op == UNARY_INSIDE_MASK) {
        return v;
    }
    switch op {
        case UNARY_NEG: { return -v; }
        case UNARY_EXP: { return exp(v); }
        case UNARY_LOG: { return log(v); }
        case UNARY_SQRT: { return sqrt(v); }
        case UNARY_ABS: { return abs(v); }
        case UNARY_SIGN: { return sign(v); }
        case UNARY_RELU: { return max(v, 0.0); }
        case UNARY_STEP: { return select(0.0, 1.0, v > 0.0); }
        case UNARY_LEAKY_MASK: { return select(c0, 1.0, v > 0.0); }
        case UNARY_SIGMOID: { return sigmoid(v); }
        case UNARY_TANH: { return stable_tanh(v); }
        case UNARY_SOFTPLUS: { return max(v, 0.0) + log1p_small(exp(-abs(v))); }
        case UNARY_POWF: { return real_pow(v, c0); }
        case UNARY_ADD_SCALAR: { return v + c0; }
        case UNARY_MUL_SCALAR: { return v * c0; }
        case UNARY_CLAMP: { return min(max(v, c0), c1); }
        case UNARY_INSIDE_MASK: { return select(0.0, 1.0, v > c0 && v < c1); }
        case UNARY_INF_TO_ZERO: { return select(v, 0.0, is_inf(v)); }
        case UNARY_SIN: { return sin(v); }
        case UNARY_COS: { return cos(v); }
        case UNARY_LOG1P: { return log1p_any(v); }
        case UNARY_EXPM1: { return expm1_any(v); }
        case UNARY_RSQRT: { return 1.0 / sqrt(v); }
        case UNARY_ERF: {
            if is_nan(v) {
                return v;
            }
            return erf_approx(v);
        }
        case UNARY_NON_ZERO: { return select(1.0, 0.0, v == 0.0 && !is_nan(v)); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= up.n {
        return;
    }
    out[i] = apply_unary(up.op, x[i], up.c0, up.c1);
}

fn apply_binary(op: u32, u: f32, v: f32) -> f32 {
    switch op {
        case BINARY_ADD: { return u + v; }
        case BINARY_SUB: { return u - v; }
        case BINARY_MUL: { return u * v; }
        case BINARY_DIV: { return u / v; }
        case BINARY_MUL_STEP: {
            if is_nan(v) {
                return v;
            }
            return select(0.0, u, v > 0.0);
        }
        case BINARY_MAX: {
            if is_nan(u) || is_nan(v) {
                return u + v;
            }
            return select(v, u, u >= v);
        }
        case BINARY_MIN: {
            if is_nan(u) || is_nan(v) {
                return u + v;
            }
            return select(v, u, u <= v);
        }
        case BINARY_GT_WEIGHT: {
            let nu = is_nan(u);
            let nv = is_nan(v);
            if nu || nv {
                return select(select(1.0, 0.5, nv), 0.0, !nu);
            }
            return select(select(0.5, 0.0, u < v), 1.0, u > v);
        }
        default: { return u; }
    }
}

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= bp.n {
        return;
    }
    let rank = bp.rank;
    // Peel the output multi-index from the innermost axis out, accumulating both offsets.
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = rank; d > 0u; d--) {
        let size = bp.tail[d - 1u];
        let k = rem % size;
        rem = rem / size;
        ia += k * bp.tail[rank + d - 1u];
        ib += k * bp.tail[2u * rank + d - 1u];
    }
    out2[i] = apply_binary(bp.op, a[ia], b[ib]);
}

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= fp.n {
        return;
    }
    filled[i] = fp.value;
}
