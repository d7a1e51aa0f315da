// The register-blocked tile product shared by matmul.wgsl and conv.wgsl (each shader's source
// is this file followed by its own, see gpu/matmul.rs and gpu/conv.rs).
//
// A workgroup of 16×16 invocations owns a 64×64 block of C. Per step of the reduction, the
// shader that includes this file loads a BM×BK slice of A and a BK×BN slice of B into
// tile_a / tile_b (zeros past the edges), then calls multiply_tiles: invocation (tx, ty)
// accumulates the 4×4 outputs at rows ty + 16·i and columns tx + 16·j, so the 16 invocations
// of a row read 16 consecutive words of tile_b.

// BM (rows of C per workgroup), BN (its columns), BK (the reduction depth per shared-memory
// tile) and THREADS (16 × 16) come from the prelude, generated from the Rust constants
// TILE_M, TILE_N, TILE_K and TILE_THREADS of kernels/src/gpu/params.rs. The 4×4 blocking
// below is written for 64×64 tiles of 16×16 invocations.

// tile_a[t·BM + i] = A[row0 + i, red0 + t]; tile_b[t·BN + j] = B[red0 + t, col0 + j].
var<workgroup> tile_a: array<f32, BM * BK>;
var<workgroup> tile_b: array<f32, BK * BN>;

// acc[i][j] += Σ_t tile_a[t, ty + 16i] · tile_b[t, tx + 16j]: one BK-deep step of the product.
fn multiply_tiles(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
    for (var t = 0u; t < BK; t++) {
        let bv = vec4<f32>(
            tile_b[t * BN + tx],
            tile_b[t * BN + tx + 16u],
            tile_b[t * BN + tx + 32u],
            tile_b[t * BN + tx + 48u],
        );
        for (var i = 0u; i < 4u; i++) {
            (*acc)[i] += tile_a[t * BM + ty + 16u * i] * bv;
        }
    }
}

