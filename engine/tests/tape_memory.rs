//! A training loop holds steady memory: each step's tape is freed when the step ends.
//! (Its own test binary, so no other test's tensors move the process-wide node count.)

use ferrograd_engine::{live_nodes, no_grad, Conv2dParams, DType, Rng, Tensor};

#[test]
fn tape_is_freed_after_every_step_and_deep_chains_do_not_overflow() {
    let mut rng = Rng::new(5);
    // A small CNN: conv → relu → max-pool → linear → cross-entropy, trained by plain SGD.
    let w1 = Tensor::randn(&[4, 1, 3, 3], 0.0, 0.3, DType::F32, &mut rng)
        .unwrap()
        .requires_grad_();
    let b1 = Tensor::zeros(&[4], DType::F32).unwrap().requires_grad_();
    let w2 = Tensor::randn(&[4 * 4 * 4, 3], 0.0, 0.1, DType::F32, &mut rng)
        .unwrap()
        .requires_grad_();
    let params = [w1.clone(), b1.clone(), w2.clone()];
    let x = Tensor::randn(&[8, 1, 8, 8], 0.0, 1.0, DType::F32, &mut rng).unwrap();
    let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();

    let baseline = live_nodes();
    let mut losses = Vec::new();
    for _ in 0..200 {
        let h = x
            .conv2d(&w1, Some(&b1), Conv2dParams::default().padding(1))
            .unwrap()
            .relu()
            .unwrap()
            .max_pool2d(2, 2, 0)
            .unwrap();
        let loss = h
            .flatten(1)
            .unwrap()
            .matmul(&w2)
            .unwrap()
            .cross_entropy(&labels)
            .unwrap();
        assert!(live_nodes() > baseline, "the forward pass records a tape");
        loss.backward().unwrap();
        losses.push(loss.item().unwrap());
        no_grad(|| {
            for p in &params {
                let g = p.grad().expect("every parameter gets a gradient");
                p.assign(&p.sub(&g.mul_scalar(0.1).unwrap()).unwrap())
                    .unwrap();
                p.zero_grad();
            }
        });
        drop(loss);
        drop(h);
        assert_eq!(live_nodes(), baseline, "the step's tape outlived the step");
    }
    assert!(
        losses[199] < 0.5 * losses[0],
        "training lowers the loss: {} -> {}",
        losses[0],
        losses[199]
    );

    // x ← x·1.0001 + 0.5, 20,000 ops deep: backward and drop must not recurse per node.
    let x0 = Tensor::scalar(1.0, DType::F64).requires_grad_();
    let mut y = x0.clone();
    for _ in 0..10_000 {
        y = y.mul_scalar(1.0001).unwrap().add_scalar(0.5).unwrap();
    }
    y.backward().unwrap();
    let want = 1.0001f64.powi(10_000);
    assert!((x0.grad().unwrap().item().unwrap() - want).abs() < 1e-9 * want);
    drop(y);
    assert_eq!(live_nodes(), baseline);
}
