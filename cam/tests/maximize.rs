//! Activation maximisation climbs: on a fixed seed, the class score rises at every step.

mod common;
use common::classifier;

use ferrograd_cam::maps::Score;
use ferrograd_cam::maximize::{maximize_class, MaximizeSettings};
use ferrograd_engine::Rng;
use ferrograd_models::classifier::ClassifierActivation;

#[test]
fn the_class_score_rises_at_every_step_on_a_fixed_seed() {
    let model = classifier(ClassifierActivation::Relu, 1);
    // Without jitter or regularisers the ascent is plain gradient ascent on the score, which a
    // small enough step must raise every time.
    let settings = MaximizeSettings {
        steps: 40,
        lr: 0.01,
        total_variation: 0.0,
        l2: 0.0,
        jitter: 0,
        score: Score::Logit,
    };
    let run = maximize_class(&model, 6, &settings, &mut Rng::new(2)).unwrap();
    for (t, pair) in run.scores.windows(2).enumerate() {
        assert!(
            pair[1] > pair[0],
            "step {}: {} after {}",
            t + 2,
            pair[1],
            pair[0]
        );
    }
    assert!(run.image.iter().all(|v| (0.0..=1.0).contains(v)));
    // With jitter each step ascends a shifted image's score, so single steps may fall, but the
    // score ends well above its start. (The default regularisers are weighed for a trained
    // classifier's logits, which this random one's tiny logits cannot outweigh.)
    let jittered = MaximizeSettings {
        jitter: 2,
        steps: 100,
        ..settings
    };
    let run = maximize_class(&model, 6, &jittered, &mut Rng::new(2)).unwrap();
    assert!(
        run.scores.last().unwrap() > &(run.scores[0] + 0.05),
        "{} → {}",
        run.scores[0],
        run.scores.last().unwrap()
    );
}

#[test]
fn an_unknown_class_or_no_steps_is_refused() {
    let model = classifier(ClassifierActivation::Relu, 3);
    let mut rng = Rng::new(4);
    assert!(maximize_class(&model, 10, &MaximizeSettings::default(), &mut rng).is_err());
    let none = MaximizeSettings {
        steps: 0,
        ..MaximizeSettings::default()
    };
    assert!(maximize_class(&model, 0, &none, &mut rng).is_err());
}
