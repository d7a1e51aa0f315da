// 2-D convolution as implicit GEMM, and max-pool argmax, mirroring conv.rs.
//
// Layout: flat row-major f32 buffers, x: [N, C, H, W], w: [K, C/G, R, S], y: [N, K, P, Q]
// (G groups, Cg = C/G, Kg = K/G). The tap (r, s) of output (p, q) reads input
// (h, w) = (p·sh + r·dh − ph, q·sw + s·dw − pw); taps outside the image read 0.
//
// Each convolution is, per group g (workgroup_id.z), one matrix product C[M×N] = A·B whose
// operands are never materialised (no im2col buffer): the tile loads compute the address of
// each element from its (row, reduction, column) indices.
//
//   conv2d_forward           y[n, gKg+m, p, q] = Σ_(c,r,s) w[gKg+m, c, r, s] · x[n, gCg+c, h, w]
//     M = Kg, N = N·P·Q (n, p, q), reduction Cg·R·S (c, r, s); A = w, B = the unfolded x.
//   conv2d_backward_input    dx[n, gCg+c, h, w] = Σ_(k,r,s) w[gKg+k, c, r, s] · dy[n, gKg+k, p, q]
//     M = Cg, N = N·H·W (n, h, w), reduction Kg·R·S (k, r, s), where p solves
//     h = p·sh + r·dh − ph, i.e. p = (h + ph − r·dh) / sh when that is a whole number in
//     [0, P) (likewise q), else the term is 0. This is the adjoint of forward in x.
//   conv2d_backward_weight   dw[gKg+m, c, r, s] = Σ_(n,p,q) dy[n, gKg+m, p, q] · x[n, gCg+c, h, w]
//     M = Kg, N = Cg·R·S (c, r, s), reduction N·P·Q (n, p, q): the adjoint of forward in w.
//     The long reduction may be split into `splits` chunks (z = g·splits + chunk), each
//     written to its own copy of dw, which `sum_splits` then adds in a fixed order.
//
// Tiling (as in matmul.wgsl): a workgroup of 16×16 invocations computes a 64×64 tile of C
// (workgroup_id.x: column tile, .y: row tile). The reduction advances 16 at a time through
// workgroup memory: the 64×16 slice of A and the 16×64 slice of B are loaded cooperatively
// (4 words per invocation each; 0 outside the matrix or the image), then each invocation
// accumulates a 4×4 block of C in registers, rows ty + 16·i and columns tx + 16·j.
//
// max_pool2d_argmax: one invocation per output (n, c, p, q): the flat index into x of the
// window's first maximum over the taps inside the image (a NaN wins and stays; padding never
// wins; a window wholly in the padding gives the plane's first index).
//
// Parameters: ConvParams (the convolutions), SplitParams (sum_splits) and PoolParams (max
// pool), declared in the prelude generated from kernels/src/gpu/params.rs.

@group(0) @binding(0) var<storage, read> cp: ConvParams;
@group(0) @binding(0) var<storage, read> sp: SplitParams;
@group(0) @binding(0) var<storage, read> pp: PoolParams;
// The convolutions: lhs holds A's source (w, or dy for the weight gradient), rhs B's (x, or
// dy for the input gradient).
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// sum_splits reads the chunks' partial sums from lhs.
@group(0) @binding(2) var<storage, read_write> summed: array<f32>;
// max_pool2d_argmax reads x from lhs.
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;

// BM, BN, BK, THREADS, tile_a, tile_b and multiply_tiles come from tile.wgsl.
const FORWARD: u32 = 0u;
const BACKWARD_INPUT: u32 = 1u;
const BACKWARD_WEIGHT: u32 = 2u;


struct Geometry {
    batch: u32,
    c: u32,
    h: u32,
    w: u32,
    k: u32,
    r: u32,
    s: u32,
    p: u32,
    q: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    groups: u32,
    cg: u32,
    kg: u32,
    rs: u32, // R·S
    pq: u32, // P·Q
    hw: u32, // H·W
}

fn geometry() -> Geometry {
    var g: Geometry;
    g.batch = cp.batch;
    g.c = cp.c;
    g.h = cp.h;
    g.w = cp.w;
    g.k = cp.k;
    g.r = cp.r;
    g.s = cp.s;
    g.p = cp.p;
    g.q = cp.q;
    g.sh = cp.stride_h;
    g.sw = cp.stride_w;
    g.ph = cp.pad_h;
    g.pw = cp.pad_w;
    g.dh = cp.dil_h;
    g.dw = cp.dil_w;
    g.groups = cp.groups;
    g.cg = g.c / g.groups;
    g.kg = g.k / g.groups;
    g.rs = g.r * g.s;
    g.pq = g.p * g.q;
    g.hw = g.h * g.w;
    return g;
}

// x[n, ch, p·sh + r·dh − ph, q·sw + s·dw − pw], or 0 in the padding. x is rhs wherever it is
// read by a convolution.
fn x_tap(g: Geometry, n: u32, ch: u32, p: u32, q: u32, r: u32, s: u32) -> f32 {
    let ih = i32(p * g.sh + r * g.dh) - i32(g.ph);
    let iw = i32(q * g.sw + s * g.dw) - i32(g.pw);
    if ih < 0 || iw < 0 || ih >= i32(g.h) || iw >= i32(g.w) {
        return 0.0;
    }
    return rhs[((n * g.c + ch) * g.h + u32(ih)) * g.w + u32(iw)];
}

// The output position o with o·stride + tap·dil − pad = i, or −1 when there is none in
// [0, len): the inverse of the forward tap, used by the input gradient.
fn solve_tap(i: u32, tap: u32, stride: u32, pad: u32, dil: u32, len: u32) -> i32 {
    let t = i32(i + pad) - i32(tap * dil);
    if t < 0 || u32(t) % stride != 0u {
        return -1;
    }
    let o = u32(t) / stride;
    if o >= len {
        return -1;
    }
    return i32(o);
}

// A[row, red] of group grp (both in range).
fn load_a(mode: u32, g: Geometry, grp: u32, row: u32, red: u32) -> f32 {
    switch mode {
        case FORWARD: {
            // w[gKg + row, (c, r, s) = red]
            return lhs[(grp * g.kg + row) * g.cg * g.rs + red];
        }
        case BACKWARD_INPUT: {
            // w[gKg + k, c = row, r, s] with red = (k, r, s)
            let k = red / g.rs;
            return lhs[((grp * g.kg + k) * g.cg + row) * g.rs + red % g.rs];
        }
        default: {
            // dy[n, gKg + row, p, q] with red = (n, p, q)
            let n = red / g.pq;
            return lhs[(n * g.k + grp * g.kg + row) * g.pq + red % g.pq];
        }
    }
}

// B[red, col] of group grp (both in range).
fn load_b(mode: u32, g: Geometry, grp: u32, red: u32, col: u32) -> f32 {
    switch mode {
        case FORWARD: {
            // red = (c, r, s), col = (n, p, q)
            let c = red / g.rs;
            let r = (red % g.rs) / g.s;
            let s = red % g.s;
            let n = col / g.pq;
            let p = (col % g.pq) / g.q;
            let q = col % g.q;
            return x_tap(g, n, grp * g.cg + c, p, q, r, s);
        }
        case BACKWARD_INPUT: {
            // red = (k, r, s), col = (n, h, w): dy[n, gKg + k, p, q] where the tap (r, s) of
            // output (p, q) lands on (h, w).
            let k = red / g.rs;
            let r = (red % g.rs) / g.s;
            let s = red % g.s;
            let n = col / g.hw;
            let h = (col % g.hw) / g.w;
            let w = col % g.w;
            let p = solve_tap(h, r, g.sh, g.ph, g.dh, g.p);
            let q = solve_tap(w, s, g.sw, g.pw, g.dw, g.q);
            if p < 0 || q < 0 {
                return 0.0;
            }
            return rhs[((n * g.k + grp * g.kg + k) * g.p + u32(p)) * g.q + u32(q)];
        }
        default: {
            // red = (n, p, q), col = (c, r, s)
            let n = red / g.pq;
            let p = (red % g.pq) / g.q;
            let q = red % g.q;
            let c = col / g.rs;
            let r = (col % g.rs) / g.s;
            let s = col % g.s;
            return x_tap(g, n, grp * g.cg + c, p, q, r, s);
        }
    }
}

fn store(mode: u32, g: Geometry, grp: u32, chunk: u32, row: u32, col: u32, v: f32) {
    switch mode {
        case FORWARD: {
            // y[n, gKg + row, (p, q)] with col = (n, p, q)
            let n = col / g.pq;
            out[(n * g.k + grp * g.kg + row) * g.pq + col % g.pq] = v;
        }
        case BACKWARD_INPUT: {
            // dx[n, gCg + row, (h, w)] with col = (n, h, w)
            let n = col / g.hw;
            out[(n * g.c + grp * g.cg + row) * g.hw + col % g.hw] = v;
        }
        default: {
            // dw[gKg + row, (c, r, s) = col], in this reduction chunk's copy of dw
            let w_len = g.k * g.cg * g.rs;
            out[chunk * w_len + (grp * g.kg + row) * g.cg * g.rs + col] = v;
        }
    }
}

// The tile loop shared by the three convolutions; `mode` is a constant in each entry point.
fn implicit_gemm(mode: u32, wid: vec3<u32>, lid: vec3<u32>) {
    let g = geometry();
    let z = wid.z + cp.z_base;
    var grp = z;
    var chunk = 0u;
    var m: u32;
    var n: u32;
    var red_lo = 0u;
    var red_hi: u32;
    switch mode {
        case FORWARD: {
            m = g.kg;
            n = g.batch * g.pq;
            red_hi = g.cg * g.rs;
        }
        case BACKWARD_INPUT: {
            m = g.cg;
            n = g.batch * g.hw;
            red_hi = g.kg * g.rs;
        }
        default: {
            let splits = cp.splits;
            let split_len = cp.split_len;
            grp = z / splits;
            chunk = z % splits;
            m = g.kg;
            n = g.cg * g.rs;
            red_lo = chunk * split_len;
            red_hi = min(g.batch * g.pq, red_lo + split_len);
        }
    }
    // Whether neighbouring invocations should walk B along the reduction (where B's source
    // is contiguous: x along q in the weight gradient) rather than along the columns.
    let b_red_fast = mode == BACKWARD_WEIGHT;

    let row0 = (wid.y + cp.y_base) * BM;
    let col0 = (wid.x + cp.x_base) * BN;
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;

    var acc: array<vec4<f32>, 4>;
    for (var red0 = red_lo; red0 < red_hi; red0 += BK) {
        for (var l = 0u; l < 4u; l++) {
            let e = tid + l * THREADS;
            // A's sources are contiguous along the reduction in all three modes.
            let ta = e % BK;
            let i = e / BK;
            var va = 0.0;
            if row0 + i < m && red0 + ta < red_hi {
                va = load_a(mode, g, grp, row0 + i, red0 + ta);
            }
            tile_a[ta * BM + i] = va;

            var tb: u32;
            var j: u32;
            if b_red_fast {
                tb = e % BK;
                j = e / BK;
            } else {
                j = e % BN;
                tb = e / BN;
            }
            var vb = 0.0;
            if red0 + tb < red_hi && col0 + j < n {
                vb = load_b(mode, g, grp, red0 + tb, col0 + j);
            }
            tile_b[tb * BN + j] = vb;
        }
        workgroupBarrier();
        multiply_tiles(&acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty + 16u * i;
        if row >= m {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx + 16u * j;
            if col < n {
                store(mode, g, grp, chunk, row, col, acc[i][j]);
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    implicit_gemm(FORWARD, wid, lid);
}

@compute @workgroup_size(16, 16)
fn conv2d_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    implicit_gemm(BACKWARD_INPUT, wid, lid);
}

@compute @workgroup_size(16, 16)
fn conv2d_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    implicit_gemm(BACKWARD_WEIGHT, wid, lid);
}

// summed[i] = Σ_chunk lhs[chunk·len + i], chunks in order (the same sum on every run).
@compute @workgroup_size(WG)
fn sum_splits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let len = sp.len;
    if i >= len {
        return;
    }
    var total = 0.0;
    for (var chunk = 0u; chunk < sp.splits; chunk++) {
        total += lhs[chunk * len + i];
    }
    summed[i] = total;
}

// NaN test on the bits: WGSL lets a compiler assume floats are never NaN, so v != v may fold.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// The taps t of a window starting at `start` (in padded coordinates) that land in the image:
// pad ≤ start + t·dil < pad + len, as the half-open range [lo, hi) of t, solved rather than
// searched (a window may be far larger than the image). The host keeps every size below 2^28,
// so none of these sums overflows.
fn taps_inside(start: u32, pad: u32, dil: u32, len: u32, kernel: u32) -> vec2<u32> {
    var lo = 0u;
    if start < pad {
        lo = (pad - start + dil - 1u) / dil;
    }
    var hi = 0u;
    if start < pad + len {
        hi = min(kernel, (pad + len - start + dil - 1u) / dil);
    }
    return vec2<u32>(lo, max(lo, hi));
}

@compute @workgroup_size(WG)
fn max_pool2d_argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * WG;
    if o >= pp.outputs {
        return;
    }
    let h = pp.h;
    let w = pp.w;
    let out_h = pp.out_h;
    let out_w = pp.out_w;

    let plane = o / (out_h * out_w);
    let p = (o / out_w) % out_h;
    let q = o % out_w;
    let base = plane * h * w;
    let rows = taps_inside(p * pp.stride_h, pp.pad_h, pp.dil_h, h, pp.kernel_h);
    let cols = taps_inside(q * pp.stride_w, pp.pad_w, pp.dil_w, w, pp.kernel_w);
    var found = false;
    var best = 0.0;
    var best_nan = false;
    var best_i = base;
    for (var r = rows.x; r < rows.y; r++) {
        let ih = p * pp.stride_h + r * pp.dil_h - pp.pad_h;
        for (var s = cols.x; s < cols.y; s++) {
            let iw = q * pp.stride_w + s * pp.dil_w - pp.pad_w;
            let i = base + ih * w + iw;
            let v = lhs[i];
            let v_nan = is_nan(v);
            // The first tap inside the image starts the search; after it only a strictly
            // larger value or a first NaN takes over, and nothing takes over from a NaN.
            if !found || (!best_nan && (v_nan || v > best)) {
                found = true;
                best = v;
                best_nan = v_nan;
                best_i = i;
            }
        }
    }
    argmax[o] = best_i;
}
