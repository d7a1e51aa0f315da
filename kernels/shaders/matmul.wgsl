// Batched matrix product: for every batch index z of the output,
//   C_z[m×n] = op(A_z) · op(B_z),   C_z[i, j] = Σ_p op(A_z)[i, p] · op(B_z)[p, j],
// where op(A_z) is A_z (stored row-major [m, k]) or A_zᵀ (stored [k, m]), likewise op(B_z)
// from [k, n] or [n, k]. A and B broadcast over the batch axes NumPy-style: the host passes
// per-axis batch strides already scaled to words, 0 on a repeated axis.
//
// Layout: flat row-major f32 buffers; C is contiguous [batch..., m, n].
//
// Tiling: one workgroup of 16×16 invocations computes a 64×64 tile of C (workgroup_id.x picks
// the column tile, .y the row tile, .z the batch index). The reduction advances 16 at a time:
// the 64×16 slice of op(A) and the 16×64 slice of op(B) are loaded cooperatively into
// workgroup memory (4 words per invocation each, the loop order chosen so that neighbouring
// invocations read neighbouring addresses of the stored matrix), then each invocation
// accumulates a 4×4 block of C in registers: rows ty + 16·i, columns tx + 16·j (i, j < 4).
// That spacing makes the 16 invocations of a row read 16 consecutive words of the B tile
// (no bank conflicts) and write 16 consecutive words of C. Out-of-range loads read 0 and
// out-of-range outputs are not written, so any m, n, k ≥ 1 works; k = 0 writes zeros. Both
// operands check the reduction bound: one zero would cancel a stray finite value from past
// the end of a row, but 0 · ∞ is NaN.
//
// Parameters: MatmulParams (declared in the prelude) with its tail [out_batch[rank],
// a_batch_strides[rank], b_batch_strides[rank]]. The three bases x_base, y_base, z_base
// offset workgroup_id, for grids split into several dispatches past the 65,535 workgroups a
// dimension allows.

@group(0) @binding(0) var<storage, read> mp: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// BM, BN, BK, THREADS, tile_a, tile_b and multiply_tiles come from tile.wgsl:
// tile_a[p·BM + i] = op(A)[row0 + i, k0 + p]; tile_b[p·BN + j] = op(B)[k0 + p, col0 + j].

@compute @workgroup_size(16, 16)
fn batched_matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = mp.m;
    let n = mp.n;
    let k = mp.k;
    let transpose_a = mp.transpose_a != 0u;
    let transpose_b = mp.transpose_b != 0u;
    let rank = mp.rank;

    // The batch index's multi-index over out_batch, weighted by each operand's strides.
    let z = wid.z + mp.z_base;
    var rem = z;
    var a_off = 0u;
    var b_off = 0u;
    for (var d = rank; d > 0u; d--) {
        let size = mp.tail[d - 1u];
        let idx = rem % size;
        rem = rem / size;
        a_off += idx * mp.tail[rank + d - 1u];
        b_off += idx * mp.tail[2u * rank + d - 1u];
    }
    let c_off = z * m * n;

    let row0 = (wid.y + mp.y_base) * BM;
    let col0 = (wid.x + mp.x_base) * BN;
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k; k0 += BK) {
        for (var l = 0u; l < 4u; l++) {
            let t = tid + l * THREADS;
            // op(A)[i, p]: stored [m, k] (p contiguous) or [k, m] (i contiguous).
            var i: u32;
            var p: u32;
            if transpose_a {
                i = t % BM;
                p = t / BM;
            } else {
                p = t % BK;
                i = t / BK;
            }
            var va = 0.0;
            if row0 + i < m && k0 + p < k {
                if transpose_a {
                    va = a[a_off + (k0 + p) * m + row0 + i];
                } else {
                    va = a[a_off + (row0 + i) * k + k0 + p];
                }
            }
            tile_a[p * BM + i] = va;

            // op(B)[p, j]: stored [k, n] (j contiguous) or [n, k] (p contiguous).
            var j: u32;
            if transpose_b {
                p = t % BK;
                j = t / BK;
            } else {
                j = t % BN;
                p = t / BN;
            }
            var vb = 0.0;
            if k0 + p < k && col0 + j < n {
                if transpose_b {
                    vb = b[b_off + (col0 + j) * k + k0 + p];
                } else {
                    vb = b[b_off + (k0 + p) * n + col0 + j];
                }
            }
            tile_b[p * BN + j] = vb;
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
                c[c_off + row * n + col] = acc[i][j];
            }
        }
    }
}
