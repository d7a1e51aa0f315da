//! ROAD on a hand-made case whose answer is known: a "classifier" that looks only at the
//! top-left quadrant, an image bright there, and two maps, one on that quadrant and one away
//! from it.

use ferrograd_cam::road::{impute, road_scores, PERCENTILES};
use ferrograd_engine::{Result, Rng};

const SIDE: usize = 28;

fn in_top_left(i: usize) -> bool {
    i / SIDE < SIDE / 2 && i % SIDE < SIDE / 2
}

/// The mean intensity of the top-left quadrant of each image: all the evidence is there.
fn quadrant_score(images: &[f32], n: usize, _class: usize) -> Result<Vec<f64>> {
    Ok(images
        .chunks(images.len() / n)
        .map(|img| {
            let q: Vec<f64> = (0..img.len())
                .filter(|&i| in_top_left(i))
                .map(|i| img[i] as f64)
                .collect();
            q.iter().sum::<f64>() / q.len() as f64
        })
        .collect())
}

#[test]
fn a_map_on_the_evidence_beats_a_map_beside_it_both_ways() {
    let mut rng = Rng::new(1);
    // Bright (0.8–1.0) in the top-left quadrant, dark (0–0.2) elsewhere.
    let image: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| {
            let base = if in_top_left(i) { 0.8 } else { 0.0 };
            (base + 0.2 * rng.uniform()) as f32
        })
        .collect();
    let on_evidence: Vec<f64> = (0..SIDE * SIDE)
        .map(|i| if in_top_left(i) { 1.0 } else { 0.0 } + 1e-3 * (i % 7) as f64)
        .collect();
    let beside: Vec<f64> = on_evidence.iter().map(|v| 1.0 - v).collect();
    let good = road_scores(
        &image,
        &on_evidence,
        0,
        SIDE,
        &mut quadrant_score,
        &mut Rng::new(2),
    )
    .unwrap();
    let bad = road_scores(
        &image,
        &beside,
        0,
        SIDE,
        &mut quadrant_score,
        &mut Rng::new(2),
    )
    .unwrap();
    assert_eq!(good.most_relevant_first.len(), PERCENTILES.len());
    // Removing the evidence first makes the score fall; removing the rest first keeps it.
    assert!(
        good.morf() < bad.morf() - 0.2,
        "MoRF {} vs {}",
        good.morf(),
        bad.morf()
    );
    assert!(
        good.lerf() > bad.lerf() + 0.2,
        "LeRF {} vs {}",
        good.lerf(),
        bad.lerf()
    );
    assert!(good.combined() > bad.combined());
    // The good map's MoRF curve falls as more evidence goes.
    let m = &good.most_relevant_first;
    assert!(m[0] > m[4] && m[4] > m[8], "{m:?}");
}

#[test]
fn imputation_fills_holes_with_the_neighbours_mean_plus_small_noise() {
    // A linear ramp is harmonic, so the 8-neighbour weighted mean reproduces it exactly: the
    // imputed values differ from the truth only by the noise.
    let ramp: Vec<f64> = (0..SIDE * SIDE)
        .map(|i| (i % SIDE) as f64 / SIDE as f64)
        .collect();
    // Holes away from the border, where the truncated stencil would not be harmonic.
    let interior =
        |i: usize| (2..SIDE - 2).contains(&(i / SIDE)) && (2..SIDE - 2).contains(&(i % SIDE));
    let removed: Vec<bool> = (0..SIDE * SIDE)
        .map(|i| interior(i) && (i * 7919) % 5 == 0)
        .collect();
    let filled = impute(&ramp, &removed, SIDE, &mut Rng::new(3));
    for i in 0..SIDE * SIDE {
        if removed[i] {
            // Five standard deviations of the noise.
            assert!(
                (filled[i] - ramp[i]).abs() < 0.05,
                "pixel {i}: {} vs {}",
                filled[i],
                ramp[i]
            );
        } else {
            assert_eq!(filled[i], ramp[i], "kept pixels stay");
        }
    }
}
