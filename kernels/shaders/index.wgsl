// Flat gathers and scatters, mirroring `gather` and `scatter_add` in index.rs:
//   gather:      out[i] = x[idx[i]]
//   scatter_add: out[idx[i]] += g[i]   (out zeroed by the host beforehand)
//
// Layout: flat buffers of 32-bit words; idx holds u32 indices. gather moves raw words, so it
// copies f32 values bit for bit (NaNs included) and works for u32 payloads too. An index out
// of range is not checked here: WGSL clamps out-of-bounds accesses, where the CPU would panic.
//
// Work split: one invocation per element of idx, the 1-D index folded over gid.y past 65,535
// workgroups. scatter_add's invocations collide wherever indices repeat; WGSL has no float
// atomics, so each adds through a compare-and-swap loop on the output word's bit pattern
// (the sum's order, hence its rounding, varies from run to run).
//
// Parameters: IndexParams (n, the length of idx), declared in the prelude.

@group(0) @binding(0) var<storage, read> ip: IndexParams;

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> gathered: array<u32>;

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> scattered: array<atomic<u32>>;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= ip.n {
        return;
    }
    gathered[i] = x[idx[i]];
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= ip.n {
        return;
    }
    let j = idx[i];
    let v = g[i];
    // Read the word, add in f32, and publish only if nobody wrote in between; otherwise retry
    // from the value that won. (Weak: it may also fail spuriously, which the loop absorbs.)
    var old = atomicLoad(&scattered[j]);
    loop {
        let new_bits = bitcast<u32>(bitcast<f32>(old) + v);
        let r = atomicCompareExchangeWeak(&scattered[j], old, new_bits);
        if r.exchanged {
            break;
        }
        old = r.old_value;
    }
}
