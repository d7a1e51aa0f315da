// Moving elements without arithmetic: out[i] = x[offset(i)], where offset(i) takes the output
// multi-index of i and weights it by arbitrary per-axis strides. A permutation uses the
// input's strides in permuted order; a broadcast uses stride 0 on the repeated axes.
//
// Layout: x and out flat f32. One invocation per output element (pure data movement).
// Parameters: CopyParams, tail = out_shape[rank], strides[rank] (the prelude declares it).

@group(0) @binding(0) var<storage, read> cp: CopyParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn strided_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= cp.n {
        return;
    }
    let rank = cp.rank;
    var rem = i;
    var src = 0u;
    for (var d = rank; d > 0u; d--) {
        let size = cp.tail[d - 1u];
        src += (rem % size) * cp.tail[rank + d - 1u];
        rem = rem / size;
    }
    out[i] = x[src];
}
