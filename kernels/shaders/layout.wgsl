// Moving elements without arithmetic: out[i] = x[offset(i)], where offset(i) takes the output
// multi-index of i and weights it by arbitrary per-axis strides. A permutation uses the
// input's strides in permuted order; a broadcast uses stride 0 on the repeated axes.
//
// Layout: x and out flat f32. One invocation per output element (pure data movement).
// params: [n, rank, out_shape[rank], strides[rank]]

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn strided_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params[0] {
        return;
    }
    let rank = params[1];
    var rem = i;
    var src = 0u;
    for (var d = rank; d > 0u; d--) {
        let size = params[2u + d - 1u];
        src += (rem % size) * params[2u + rank + d - 1u];
        rem = rem / size;
    }
    out[i] = x[src];
}
