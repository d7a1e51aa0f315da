//! The README's example: the engine's f', f'', f''' match the closed form to 1e-10.

#[path = "../examples/derivatives.rs"]
mod derivatives;

#[test]
fn derivatives_match_closed_form_to_1e_10() {
    let worst = derivatives::worst_relative_error(false).unwrap();
    assert!(worst < 1e-10, "worst relative difference {worst:e}");
}

#[path = "../examples/training_loop.rs"]
mod training_loop;

#[test]
fn training_loop_example_lowers_the_loss() {
    let losses = training_loop::train(20).unwrap();
    assert!(losses[19] < losses[0], "{losses:?}");
}
