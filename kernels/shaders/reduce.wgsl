// Reductions to a "kept" shape, mirroring `sum_to` and `max_to` in reduce.rs:
//   sum_to:    out[o] = Σ_r x[base(o) + offset(r)]
//   argmax_to: out[o] = the flat index into x of max_r x[base(o) + offset(r)]
// where o runs over the output elements and r over the R elements that fold into each.
//
// Layout: x flat row-major (f32 for sum_to; read as raw u32 words for argmax_to, so that a NaN
// is recognised by its bits whatever the compiler assumes about float NaNs); out flat, f32
// sums or u32 indices. Both the kept and the reduced axes arrive merged (adjacent axes that
// are contiguous in x become one), outermost first, each as (size, stride in x):
//   base(o)   peels o over the kept sizes, innermost axis first, weighting by kept strides;
//   offset(r) peels r over the reduced sizes the same way.
//
// Work split: a workgroup of 256 invocations serves 256/T outputs with T invocations each,
// T = min(256, next power of two ≥ R), chosen by the host. A long reduction (R ≥ 129) gets a
// whole workgroup per output; a short one packs several outputs into a workgroup instead of
// leaving most invocations idle. Each of an output's T invocations strides over r = lane,
// lane + T, … accumulating a private partial, then the T partials meet in a shared-memory tree
// (halving the active lanes each round: log₂ T barriers).
//
// The private partial is a pairwise sum, not a running total, so a long f32 reduction loses
// about log₂ R roundings instead of R/T: the lane's values are summed in blocks of 8, and the
// blocks meet in a binary counter (level k holds the sum of 2^k blocks; adding a block carries
// up the levels like adding 1 to a binary number). Workgroups fold past 65,535 over
// gid.y: the flat workgroup index is wid.x + wid.y · nwg.x.
//
// Parameters: ReduceParams (n_out, threads = T, count = R, n_kept, n_red), its tail
// [kept_sizes[n_kept], kept_strides[n_kept], red_sizes[n_red], red_strides[n_red]], declared
// in the prelude.

@group(0) @binding(0) var<storage, read> rp: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@group(0) @binding(1) var<storage, read> xbits: array<u32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;

/// "No element seen yet": the index an empty reduction reports (usize::MAX on the CPU).
const NONE: u32 = 0xffffffffu;

var<workgroup> partial_sum: array<f32, WG>;
var<workgroup> best_bits: array<u32, WG>;
var<workgroup> best_index: array<u32, WG>;

/// Where an invocation works: the output o it serves, and its lane among that output's T.
struct Slot {
    o: u32,
    lane: u32,
    threads: u32,
}

fn slot(wid: vec3<u32>, nwg: vec3<u32>, t: u32) -> Slot {
    let threads = rp.threads;
    let group = wid.x + wid.y * nwg.x;
    return Slot(group * (WG / threads) + t / threads, t % threads, threads);
}

/// Offset in x of output o's first reduced element.
fn base_offset(o: u32) -> u32 {
    let n_kept = rp.n_kept;
    var rem = o;
    var off = 0u;
    for (var d = n_kept; d > 0u; d--) {
        let size = rp.tail[d - 1u];
        off += (rem % size) * rp.tail[n_kept + d - 1u];
        rem = rem / size;
    }
    return off;
}

/// Offset in x of the r-th reduced element, relative to base_offset.
fn reduced_offset(r: u32) -> u32 {
    let n_red = rp.n_red;
    let first = 2u * rp.n_kept;
    var rem = r;
    var off = 0u;
    for (var d = n_red; d > 0u; d--) {
        let size = rp.tail[first + d - 1u];
        off += (rem % size) * rp.tail[first + n_red + d - 1u];
        rem = rem / size;
    }
    return off;
}

@compute @workgroup_size(WG)
fn sum_to(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let s = slot(wid, nwg, t);
    let n_out = rp.n_out;
    let count = rp.count;
    // Invocations past the last output still take part in the barriers, contributing 0.
    var levels: array<f32, 32>;
    var blocks = 0u;
    var block = 0.0;
    var in_block = 0u;
    if s.o < n_out {
        let base = base_offset(s.o);
        for (var r = s.lane; r < count; r += s.threads) {
            block += x[base + reduced_offset(r)];
            in_block += 1u;
            if in_block == 8u {
                var carry = block;
                var level = 0u;
                var k = blocks;
                loop {
                    if (k & 1u) == 0u {
                        break;
                    }
                    carry += levels[level];
                    k = k >> 1u;
                    level += 1u;
                }
                levels[level] = carry;
                blocks += 1u;
                block = 0.0;
                in_block = 0u;
            }
        }
    }
    // The lane's total: the unfinished block, then the filled levels, smallest first.
    var acc = block;
    for (var level = 0u; level < 32u; level++) {
        if ((blocks >> level) & 1u) == 1u {
            acc += levels[level];
        }
    }
    partial_sum[t] = acc;
    workgroupBarrier();
    // Tree over each output's aligned block of T slots: lane i adds lane i + step.
    for (var step = s.threads / 2u; step > 0u; step = step / 2u) {
        if s.lane < step {
            partial_sum[t] += partial_sum[t + step];
        }
        workgroupBarrier();
    }
    if s.lane == 0u && s.o < n_out {
        sums[s.o] = partial_sum[t];
    }
}

fn is_nan_bits(bits: u32) -> bool {
    return (bits & 0x7fffffffu) > 0x7f800000u;
}

/// Whether candidate b = (bits, index) beats the best so far a. The CPU walks each output's
/// elements in increasing index order and keeps the first maximum, and the first NaN once one
/// appears; as a total order that is: any NaN beats any number, a larger number beats a
/// smaller, and equal ranks go to the smaller index. Being an order rather than a scan, it
/// gives the same winner whatever order the tree combines the partials in.
fn beats(a_bits: u32, a_index: u32, b_bits: u32, b_index: u32) -> bool {
    if b_index == NONE {
        return false;
    }
    if a_index == NONE {
        return true;
    }
    let a_nan = is_nan_bits(a_bits);
    let b_nan = is_nan_bits(b_bits);
    if a_nan || b_nan {
        return b_nan && (!a_nan || b_index < a_index);
    }
    let a = bitcast<f32>(a_bits);
    let b = bitcast<f32>(b_bits);
    // −0 == +0 here, as on the CPU (neither is greater, so the first stays).
    return b > a || (b == a && b_index < a_index);
}

@compute @workgroup_size(WG)
fn argmax_to(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let s = slot(wid, nwg, t);
    let n_out = rp.n_out;
    let count = rp.count;
    var bits = 0u;
    var index = NONE;
    if s.o < n_out {
        let base = base_offset(s.o);
        for (var r = s.lane; r < count; r += s.threads) {
            let i = base + reduced_offset(r);
            let v = xbits[i];
            if beats(bits, index, v, i) {
                bits = v;
                index = i;
            }
        }
    }
    best_bits[t] = bits;
    best_index[t] = index;
    workgroupBarrier();
    for (var step = s.threads / 2u; step > 0u; step = step / 2u) {
        if s.lane < step && beats(best_bits[t], best_index[t], best_bits[t + step], best_index[t + step]) {
            best_bits[t] = best_bits[t + step];
            best_index[t] = best_index[t + step];
        }
        workgroupBarrier();
    }
    if s.lane == 0u && s.o < n_out {
        argmax[s.o] = best_index[t];
    }
}
