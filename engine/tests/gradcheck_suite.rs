//! The gradient-check suite: every op in the engine's registry, at every order it claims
//! (1 and 2 for all, 3 for conv, pooling, matmul and the smooth functions), on shapes and values
//! drawn from seeds that proptest chooses. Each op is its own test so a failure names it.

use ferrograd_engine::checks;
use ferrograd_engine::gradcheck::run_case;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per order: more at low orders, where checks are cheap.
fn cases_for(order: usize) -> u32 {
    match order {
        1 => 64,
        2 => 32,
        _ => 12,
    }
}

fn check_op(name: &str) {
    let check = checks::all()
        .into_iter()
        .find(|c| c.op == name)
        .unwrap_or_else(|| panic!("no check registered for {name}"));
    assert!(
        check.max_order >= 2,
        "{name}: every op is checked at least to order 2"
    );
    for order in 1..=check.max_order {
        let mut runner = TestRunner::new(Config {
            cases: cases_for(order),
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&(any::<u64>(), 0u64..1_000), |(seed, case)| {
            let (label, outcome) = run_case(&check, order, seed, case)
                .map_err(|e| TestCaseError::fail(format!("error: {e}")))?;
            prop_assert!(
                outcome.passed(),
                "{name} order {order}, {label}: {:?} (worst err/tol {:.3e})",
                outcome.failure,
                outcome.worst_ratio
            );
            Ok(())
        });
        if let Err(e) = result {
            panic!("{name} at order {order}: {e}");
        }
    }
}

macro_rules! op_tests {
    ($($op:ident),* $(,)?) => {
        $(
            #[test]
            fn $op() {
                check_op(stringify!($op));
            }
        )*
        /// Every registered op has a test above, and every test names a registered op.
        #[test]
        fn every_registered_op_is_tested() {
            let tested = [$(stringify!($op)),*];
            let registered: Vec<&str> = checks::all().iter().map(|c| c.op).collect();
            for op in &registered {
                assert!(tested.contains(op), "op {op} is registered but has no test in gradcheck_suite.rs");
            }
            assert_eq!(tested.len(), registered.len());
        }
    };
}

op_tests!(
    add,
    sub,
    mul,
    div,
    neg,
    powf,
    exp,
    log,
    sqrt,
    abs,
    clamp,
    relu_backward,
    relu,
    leaky_relu,
    elu,
    sigmoid,
    tanh,
    softplus,
    sin,
    cos,
    log1p,
    expm1,
    rsqrt,
    erf,
    gelu,
    gelu_tanh,
    silu,
    maximum,
    minimum,
    where_,
    sum,
    mean,
    max,
    logsumexp,
    min,
    prod,
    var,
    std,
    reshape,
    permute,
    broadcast_to,
    slice,
    pad,
    concat,
    stack,
    index_select,
    gather,
    scatter_add,
    matmul,
    conv2d,
    conv_transpose2d,
    max_pool2d,
    avg_pool2d,
    max_pool2d_with,
    avg_pool2d_with,
    global_avg_pool2d,
    upsample_nearest2d,
    pixel_shuffle,
    softmax,
    log_softmax,
    cross_entropy,
    bce_with_logits,
    mse_loss,
    l1_loss,
    channel_sum,
    channel_dot,
    channel_var,
    channel_mix,
    batch_norm,
    dropout,
);

/// Orders the issue names for third-order checks really are checked at order 3.
#[test]
fn third_order_coverage() {
    let registry = checks::all();
    for op in [
        "conv2d",
        "conv_transpose2d",
        "max_pool2d",
        "avg_pool2d",
        "matmul",
        "sigmoid",
        "tanh",
        "softplus",
        "elu",
        "exp",
        "log_softmax",
        "sin",
        "cos",
        "log1p",
        "expm1",
        "rsqrt",
        "erf",
        "gelu",
        "gelu_tanh",
        "silu",
        "prod",
        "var",
        "std",
    ] {
        let c = registry.iter().find(|c| c.op == op).expect("registered");
        assert!(c.max_order >= 3, "{op} must be checked at order 3");
    }
}
