//! A whole explanation run, as `ferrograd cam` does it: maps for chosen test images, one grid
//! picture, `cam.json`, and the faithfulness figures over many test images.

use crate::maps::{explain_batch, layer_name, Explanation, Method, Score, Target, INPUT_LAYER};
use crate::metrics::{
    curve_images, images_per_map, score_image, scores_from_probabilities, ImageScores, Summary,
};
use crate::metrics_log::{ImageRecord, MetricsLog};
use crate::render::{normalize, save_cam_grid, upsample_bilinear, Cell, Colormap};
use ferrograd_engine::{no_grad, DType, Error, Result, Rng, Tensor};
use ferrograd_models::classifier::{argmax_rows, Classifier, LAYER_NAMES};
use ferrograd_models::data::{Split, CLASS_NAMES};
use ferrograd_models::generative::Model;
use ferrograd_nn::nn::Ctx;
use std::path::Path;
use std::time::Instant;

const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// What to explain and how.
#[derive(Clone, Debug)]
pub struct CamSettings {
    /// Test images of each of these classes are explained for that class.
    pub classes: Vec<usize>,
    pub images_per_class: usize,
    /// Layer indices (0, 1, 2 for conv1..conv3).
    pub layers: Vec<usize>,
    pub methods: Vec<Method>,
    pub score: Score,
    pub colormap: Colormap,
    /// Steps of the deletion and insertion curves.
    pub curve_steps: usize,
    /// Also score every map by ROAD ([`crate::road`]) in [`test_set_metrics`].
    pub road: bool,
    /// Also write `raw.json`: every map before upsampling and normalisation, with the
    /// activations, the channel weights, the score Y, and the exact method's diagonals.
    pub raw: bool,
}

/// The ranges of `ferrograd cam`'s numeric settings (the help of each flag quotes them).
pub mod ranges {
    use ferrograd_models::settings::Count;

    /// Test images per class in the grid (each is a row of the picture).
    pub const IMAGES: Count = Count::new("images", "--images", 1, 32);
    /// Steps of the deletion and insertion curves: at most one per pixel of a 28x28 image.
    pub const CURVE_STEPS: Count = Count::new("curve_steps", "--curve-steps", 1, 28 * 28);
    /// Test images the metrics use (more than the test split holds means all of it).
    pub const METRICS_IMAGES: Count = Count::new("metrics_images", "--metrics-images", 1, 10_000);
    /// Of those, how many the exact method sees.
    pub const EXACT_IMAGES: Count = Count::new("exact_images", "--exact-images", 0, 10_000);
}

impl CamSettings {
    /// Checks every setting before any work: classes and layers that exist, no class twice,
    /// the ranges in [`ranges`], and at least one map to draw. Errors name the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::argument("cam", m));
        if let Some(c) = self.classes.iter().find(|&&c| c >= CLASS_NAMES.len()) {
            return bad(format!(
                "--classes {c}: class {c} does not exist; Fashion-MNIST has classes 0 to 9"
            ));
        }
        if let Some(c) = (0..self.classes.len())
            .find(|&i| self.classes[..i].contains(&self.classes[i]))
            .map(|i| self.classes[i])
        {
            return bad(format!("--classes: class {c} is given twice"));
        }
        if let Some(l) = self.layers.iter().find(|&&l| l >= LAYER_NAMES.len()) {
            return bad(format!(
                "layer {l} does not exist: the classifier has conv1..conv3"
            ));
        }
        if self.classes.is_empty() {
            return bad("--classes: at least one class is needed".into());
        }
        if self.layers.is_empty() {
            return bad("--layers: at least one layer is needed".into());
        }
        if self.methods.is_empty() {
            return bad("--method: at least one method is needed".into());
        }
        ranges::IMAGES
            .check(self.images_per_class)
            .map_err(|e| Error::argument("cam", e.to_string()))?;
        ranges::CURVE_STEPS
            .check(self.curve_steps)
            .map_err(|e| Error::argument("cam", e.to_string()))?;
        if self.columns().is_empty() {
            return bad(format!(
                "--method {} with --layers {}: no map to draw (CAM has a map only at {})",
                self.methods
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(","),
                self.layers
                    .iter()
                    .map(|&l| LAYER_NAMES[l])
                    .collect::<Vec<_>>()
                    .join(","),
                LAYER_NAMES[LAYER_NAMES.len() - 1]
            ));
        }
        Ok(())
    }

    /// Checks the settings of [`test_set_metrics`] as [`CamSettings::validate`] does: the
    /// ranges, and that an exact-method row would see at least one image.
    pub fn validate_metrics(&self, images: usize, exact_images: usize) -> Result<()> {
        self.validate()?;
        let range = |e: ferrograd_models::Error| Error::argument("cam", e.to_string());
        ranges::METRICS_IMAGES.check(images).map_err(range)?;
        ranges::EXACT_IMAGES.check(exact_images).map_err(range)?;
        if exact_images == 0 && self.methods.iter().any(|m| m.is_exact()) {
            return Err(Error::argument(
                "cam",
                "--exact-images 0 leaves the gradcam++exact rows without images: give 1 or \
                 more, or leave gradcam++exact out of --method",
            ));
        }
        Ok(())
    }

    /// The (method, layer) pairs that have a map: CAM only at the last layer, the input-level
    /// methods once, at [`INPUT_LAYER`], whatever the layers.
    pub fn columns(&self) -> Vec<(Method, usize)> {
        self.methods
            .iter()
            .flat_map(|&m| {
                let layers = if m.is_input_level() {
                    vec![INPUT_LAYER]
                } else {
                    self.layers.clone()
                };
                layers.into_iter().map(move |l| (m, l))
            })
            .filter(|&(m, l)| m.applies_to(l))
            .collect()
    }
}

/// One map of the run, with the figures `cam.json` records.
#[derive(Clone, Debug)]
pub struct MapRecord {
    /// Index in the test split.
    pub image: usize,
    pub label: usize,
    pub class: usize,
    pub layer: usize,
    pub method: Method,
    pub score: Score,
    pub seconds: f64,
    pub scores: ImageScores,
}

impl MapRecord {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "image": self.image,
            "label": self.label,
            "class": self.class,
            "class_name": CLASS_NAMES[self.class],
            "layer": layer_name(self.layer),
            "method": self.method.name(),
            "score": self.score.name(),
            "seconds": self.seconds,
            "probability": self.scores.probability,
            "masked_probability": self.scores.masked_probability,
            "deletion_auc": self.scores.deletion_auc,
            "insertion_auc": self.scores.insertion_auc,
        })
    }
}

/// The class probabilities of `class` for a batch of n 28x28 images.
pub fn class_probability(
    model: &Classifier,
    images: &[f32],
    n: usize,
    class: usize,
) -> Result<Vec<f64>> {
    class_probabilities(model, images, &vec![class; n])
}

/// The probability of `classes[i]` for image i of a batch of 28x28 images, one class each.
pub fn class_probabilities(
    model: &Classifier,
    images: &[f32],
    classes: &[usize],
) -> Result<Vec<f64>> {
    let n = classes.len();
    if images.len() != n * PIXELS {
        return Err(Error::argument(
            "cam",
            format!(
                "{} values are not {n} images of {PIXELS} pixels",
                images.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(n);
    // Batches of 256 keep memory flat however long the curve is.
    for (chunk, chunk_classes) in images.chunks(256 * PIXELS).zip(classes.chunks(256)) {
        let m = chunk_classes.len();
        let x = Tensor::from_f64s(
            &chunk.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &[m, 1, SIDE, SIDE],
            model_dtype(model),
        )?
        .to(model.device())?;
        let p = no_grad(|| model.logits(&x, &mut Ctx::eval())?.softmax(-1))?.to_vec_f64();
        let width = p.len() / m;
        out.extend(
            chunk_classes
                .iter()
                .enumerate()
                .map(|(i, &c)| p[i * width + c]),
        );
    }
    Ok(out)
}

/// The map of one (method, layer) for image `x`, upsampled to 28x28 and normalized to [0, 1].
pub fn heat_map(
    model: &Classifier,
    x: &Tensor,
    class: usize,
    layer: usize,
    method: Method,
    score: Score,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    let target = Target {
        model,
        layer,
        class,
        score,
    };
    let e = target.explain_with_progress(x, method, on_chunk)?;
    Ok(heat_of(&e))
}

/// An explanation's map upsampled to 28x28 and normalized to [0, 1], as drawn and scored.
fn heat_of(e: &Explanation) -> Vec<f64> {
    normalize(&upsample_bilinear(&e.map, e.height, e.width, SIDE, SIDE))
}

/// One map's `raw.json` record: enough to recompute it without this library. For the layer
/// methods the activation A [K, h, w] is included; for `gradcam++exact`, the diagonals.
fn raw_record(
    model: &Classifier,
    x: &Tensor,
    (index, class, layer, method, score): (usize, usize, usize, Method, Score),
    e: &Explanation,
) -> Result<serde_json::Value> {
    let y =
        no_grad(|| score.of_logits(&model.logits(x, &mut Ctx::eval())?, class))?.to_vec_f64()[0];
    let mut record = serde_json::json!({
        "image": index,
        "class": class,
        "layer": layer_name(layer),
        "method": method.name(),
        "score": score.name(),
        "y": y,
        "height": e.height,
        "width": e.width,
        "map": e.map,
        "weights": e.weights,
    });
    if !method.is_input_level() {
        let target = Target {
            model,
            layer,
            class,
            score,
        };
        let a = target.activation(x)?;
        record["activation_shape"] = serde_json::json!(a.shape()[1..]);
        record["activation"] = serde_json::json!(a.to_vec_f64());
    }
    if let Some(d) = &e.diagonal {
        record["d1"] = serde_json::json!(d.first);
        record["d2"] = serde_json::json!(d.second);
        record["d3"] = serde_json::json!(d.third);
    }
    Ok(record)
}

/// Progress of a run: (what, done, total).
pub type Progress<'a> = dyn FnMut(&str, usize, usize) + 'a;

/// Explains the first `images_per_class` test images of each class, writes `grid.png` (rows:
/// images; columns: the input, then each method × layer) and `cam.json` into `out`, and
/// returns the maps' records.
pub fn explain_examples(
    model: &Classifier,
    test: &Split,
    settings: &CamSettings,
    out: &Path,
    progress: &mut Progress<'_>,
) -> Result<Vec<MapRecord>> {
    settings.validate()?;
    let io = |e: std::io::Error| Error::argument("cam", format!("{}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(io)?;
    let columns = settings.columns();
    let mut chosen = Vec::new();
    for &class in &settings.classes {
        let of_class: Vec<usize> = (0..test.len)
            .filter(|&i| test.labels[i] as usize == class)
            .take(settings.images_per_class)
            .collect();
        if of_class.is_empty() {
            return Err(Error::argument(
                "cam",
                format!("the test split has no image of class {class}"),
            ));
        }
        chosen.extend(of_class.into_iter().map(|i| (i, class)));
    }
    let total = chosen.len() * columns.len();
    let mut records = Vec::new();
    let mut raw = Vec::new();
    let mut rows = Vec::new();
    let mut row_titles = Vec::new();
    // "index predicted-class probability" for the per-class pictures, which have room for it.
    let mut detailed_titles = Vec::new();
    for (row, &(index, class)) in chosen.iter().enumerate() {
        let (x, labels) = test
            .batch_at(&[index])
            .map_err(|e| Error::argument("cam", e.to_string()))?;
        let pixels = x.to_vec_f32();
        let x = x.to_dtype(model_dtype(model))?.to(model.device())?;
        let predicted = predicted_class(model, &x)?;
        row_titles.push(format!("{index} {}", short_name(predicted)));
        let p = class_probability(model, &pixels, 1, predicted)?[0];
        detailed_titles.push(format!("{index} {} {p:.2}", short_name(predicted)));
        let mut cells = vec![Cell::Input(pixels.clone())];
        for (col, &(method, layer)) in columns.iter().enumerate() {
            let what = format!(
                "image {}/{} {} {}",
                row + 1,
                chosen.len(),
                method.name(),
                layer_name(layer)
            );
            let done = row * columns.len() + col;
            progress(&what, done, total);
            let t0 = Instant::now();
            let target = Target {
                model,
                layer,
                class,
                score: settings.score,
            };
            let e = target.explain_with_progress(&x, method, &mut |d, n| {
                progress(&format!("{what}: {d}/{n} elements"), done, total)
            })?;
            let heat = heat_of(&e);
            let seconds = t0.elapsed().as_secs_f64();
            if settings.raw {
                raw.push(raw_record(
                    model,
                    &x,
                    (index, class, layer, method, settings.score),
                    &e,
                )?);
            }
            let scores = score_image(
                &pixels,
                &heat,
                class,
                settings.curve_steps,
                &mut |imgs, n, c| class_probability(model, imgs, n, c),
            )?;
            records.push(MapRecord {
                image: index,
                label: labels[0],
                class,
                layer,
                method,
                score: settings.score,
                seconds,
                scores,
            });
            cells.push(Cell::Overlay {
                input: pixels.clone(),
                heat,
            });
        }
        rows.push(cells);
    }
    progress("done", total, total);
    let mut titles = vec!["input".to_string()];
    titles.extend(
        columns
            .iter()
            .map(|&(m, l)| format!("{} {}", m.name(), layer_name(l))),
    );
    save_cam_grid(
        &out.join("grid.png"),
        &rows,
        &row_titles,
        &titles,
        SIDE,
        4,
        settings.colormap,
        0.5,
    )
    .map_err(|e| Error::argument("cam", e.to_string()))?;
    // One picture per (class, layer): that class's images as rows, each method at that layer
    // (and the input-level ones) as columns, large enough to read.
    for &class in &settings.classes {
        let of_class: Vec<usize> = (0..chosen.len())
            .filter(|&r| chosen[r].1 == class)
            .collect();
        for &layer in &settings.layers {
            let picked: Vec<usize> = (0..columns.len())
                .filter(|&c| columns[c].1 == layer || columns[c].0.is_input_level())
                .collect();
            if picked.iter().all(|&c| columns[c].0.is_input_level()) {
                continue;
            }
            let sub_rows: Vec<Vec<Cell>> = of_class
                .iter()
                .map(|&r| {
                    std::iter::once(rows[r][0].clone())
                        .chain(picked.iter().map(|&c| rows[r][c + 1].clone()))
                        .collect()
                })
                .collect();
            let titles: Vec<String> = std::iter::once("input".to_string())
                .chain(picked.iter().map(|&c| columns[c].0.name().to_string()))
                .collect();
            let sub_titles: Vec<String> = of_class
                .iter()
                .map(|&r| detailed_titles[r].clone())
                .collect();
            save_cam_grid(
                &out.join(format!(
                    "grid_{}_{}.png",
                    short_name(class),
                    layer_name(layer)
                )),
                &sub_rows,
                &sub_titles,
                &titles,
                SIDE,
                4,
                settings.colormap,
                0.5,
            )
            .map_err(|e| Error::argument("cam", e.to_string()))?;
        }
    }
    let json = serde_json::json!({
        "score": settings.score.name(),
        "classes": settings.classes,
        "maps": records.iter().map(MapRecord::to_json).collect::<Vec<_>>(),
    });
    write_json(&out.join("cam.json"), &json)?;
    if settings.raw {
        write_json(
            &out.join("raw.json"),
            &serde_json::json!({
                "note": "maps at the layer's resolution before upsampling and normalisation; \
                         weights w_k; y the class score; activation A [K, h, w] row-major; \
                         d1, d2, d3 the exact diagonal derivatives of y (gradcam++exact)",
                "maps": raw,
            }),
        )?;
    }
    Ok(records)
}

/// The element type of the model's weights (f32, or f64 after [`Classifier::cast`]): images
/// are cast to it, so a model cast to f64 explains in f64 throughout.
fn model_dtype(model: &Classifier) -> DType {
    model.head.weight.dtype()
}

/// The class the model predicts for one image [1, 1, 28, 28].
fn predicted_class(model: &Classifier, x: &Tensor) -> Result<usize> {
    Ok(predicted_classes(model, x)?[0])
}

/// The class the model predicts for each image of a batch.
fn predicted_classes(model: &Classifier, x: &Tensor) -> Result<Vec<usize>> {
    no_grad(|| argmax_rows(&model.logits(x, &mut Ctx::eval())?))
}

/// A class name short enough for a row title.
fn short_name(class: usize) -> &'static str {
    [
        "top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
    ][class]
}

fn write_json(path: &Path, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json).expect("JSON values serialize");
    ferrograd_nn::checkpoint::write_atomically(path, text.as_bytes())
        .map_err(|e| Error::argument("cam", format!("{}: {e}", path.display())))
}

/// Faithfulness of one (method, layer) over test images.
#[derive(Clone, Debug)]
pub struct MetricsRow {
    pub method: Method,
    pub layer: usize,
    pub summary: Summary,
    /// Mean seconds to compute one map.
    pub seconds_per_map: f64,
    /// ROAD's MoRF and LeRF means over images, each with its standard error, when asked for.
    pub road: Option<RoadSummary>,
}

/// ROAD over many images: the per-image means over percentiles, averaged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoadSummary {
    /// Most relevant removed first (lower is better), ± standard error.
    pub morf: (f64, f64),
    /// Least relevant removed first (higher is better), ± standard error.
    pub lerf: (f64, f64),
}

/// The mean over images and its standard error, NaN (not 0) when one image cannot give one.
fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let (mean, se) = ferrograd_models::quality::mean_and_standard_error(values);
    (mean, if values.len() < 2 { f64::NAN } else { se })
}

impl MetricsRow {
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.summary;
        serde_json::json!({
            "method": self.method.name(),
            "layer": layer_name(self.layer),
            "images": s.images,
            "average_drop_percent": s.average_drop,
            "increase_in_confidence_percent": s.increase_in_confidence,
            "deletion_auc": s.deletion_auc,
            "insertion_auc": s.insertion_auc,
            "standard_errors": {
                "average_drop_percent": s.standard_errors[0],
                "increase_in_confidence_percent": s.standard_errors[1],
                "deletion_auc": s.standard_errors[2],
                "insertion_auc": s.standard_errors[3],
            },
            "road_morf": self.road.map(|r| r.morf.0),
            "road_morf_standard_error": self.road.map(|r| r.morf.1),
            "road_lerf": self.road.map(|r| r.lerf.0),
            "road_lerf_standard_error": self.road.map(|r| r.lerf.1),
            "seconds_per_map": self.seconds_per_map,
        })
    }
}

/// How far an exact Grad-CAM++ column is from the closed form at the same layer, image by
/// image over the images both saw: what a reader needs to know when the shortcut misleads.
#[derive(Clone, Debug)]
pub struct ClosedVsExact {
    /// The exact column (`gradcam++exact` or its clamped remedy).
    pub exact: Method,
    pub layer: usize,
    pub images: usize,
    /// Spearman's rank correlation of the two 28×28 maps the metrics score, mean ± standard
    /// error over images (1: the same ranking of pixels).
    pub rank_correlation: (f64, f64),
    /// Exact minus closed form, per image, then mean ± standard error (a paired difference,
    /// so the images' own spread cancels): Average Drop %, Increase in Confidence %, deletion
    /// AUC, insertion AUC.
    pub differences: [(f64, f64); 4],
    /// The same for ROAD MoRF and LeRF, when the run measured ROAD.
    pub road_differences: Option<[(f64, f64); 2]>,
}

impl ClosedVsExact {
    pub fn to_json(&self) -> serde_json::Value {
        let pair =
            |(mean, se): (f64, f64)| serde_json::json!({ "mean": mean, "standard_error": se });
        let d = &self.differences;
        serde_json::json!({
            "exact_method": self.exact.name(),
            "closed_form_method": Method::GradCamPlusPlus.name(),
            "layer": layer_name(self.layer),
            "images": self.images,
            "rank_correlation": pair(self.rank_correlation),
            "exact_minus_closed_form": {
                "average_drop_percent": pair(d[0]),
                "increase_in_confidence_percent": pair(d[1]),
                "deletion_auc": pair(d[2]),
                "insertion_auc": pair(d[3]),
                "road_morf": self.road_differences.map(|r| pair(r[0])),
                "road_lerf": self.road_differences.map(|r| pair(r[1])),
            },
        })
    }
}

/// Everything [`test_set_metrics`] measures: a row per (method, layer), and a comparison per
/// exact Grad-CAM++ column that has the closed form beside it at its layer.
#[derive(Clone, Debug)]
pub struct TestSetMetrics {
    pub rows: Vec<MetricsRow>,
    pub closed_vs_exact: Vec<ClosedVsExact>,
}

/// Test images explained together by [`test_set_metrics`]: their closed-form maps share one
/// forward and backward pass, and their curves' images fill forward batches of 256.
pub const METRICS_BATCH: usize = 32;

/// Average Drop, Increase in Confidence and deletion/insertion AUC (and ROAD when the
/// settings ask) of every (method, layer) over the first `images` test images, each explained
/// for the class the model predicts (the papers' protocol). The exact method costs
/// milliseconds to seconds per map, so it sees the first `exact_images` of them only; each row
/// says how many images it saw.
///
/// The figures are those of [`score_image`] image by image (a test holds them to it); the
/// work is batched: [`METRICS_BATCH`] images at a time, their closed-form maps from
/// [`explain_batch`], and the curve images of all their maps in shared forward batches.
/// With a `log`, every image's figures are appended to it as they come, and a resumed run
/// starts after the images the log holds: see [`crate::metrics_log`].
pub fn test_set_metrics(
    model: &Classifier,
    test: &Split,
    settings: &CamSettings,
    images: usize,
    exact_images: usize,
    log: Option<&MetricsLog>,
    progress: &mut Progress<'_>,
) -> Result<TestSetMetrics> {
    settings.validate_metrics(images, exact_images)?;
    let images = images.min(test.len);
    let columns = settings.columns();
    let closed: Vec<usize> = (0..columns.len())
        .filter(|&c| !columns[c].0.is_exact())
        .collect();
    // (closed-form column, exact column) at the same layer.
    let pairs: Vec<(usize, usize)> = (0..columns.len())
        .filter(|&e| columns[e].0.is_exact())
        .filter_map(|e| {
            columns
                .iter()
                .position(|&c| c == (Method::GradCamPlusPlus, columns[e].1))
                .map(|c| (c, e))
        })
        .collect();
    let closed_columns: Vec<(Method, usize)> = closed.iter().map(|&c| columns[c]).collect();
    let steps = settings.curve_steps;
    let per_map = images_per_map(steps);
    let (mut records, mut writer) = match log {
        Some(log) => {
            let header = serde_json::json!({
                "model": log.model,
                "score": settings.score.name(),
                "curve_steps": steps,
                "road": settings.road,
                "images": images,
                "exact_images": exact_images.min(images),
                "columns": columns
                    .iter()
                    .map(|&(m, l)| [m.name(), layer_name(l)])
                    .collect::<Vec<_>>(),
                "pairs": pairs,
            });
            let (records, writer) =
                crate::metrics_log::open(log, &header, columns.len(), pairs.len())?;
            (records, Some(writer))
        }
        None => (Vec::new(), None),
    };
    let mut start = records.len();
    while start < images {
        progress("metrics", start, images);
        let indices: Vec<usize> = (start..(start + METRICS_BATCH).min(images)).collect();
        let (x, _) = test
            .batch_at(&indices)
            .map_err(|e| Error::argument("cam", e.to_string()))?;
        let pixels = x.to_vec_f32();
        let x = x.to_dtype(model_dtype(model))?.to(model.device())?;
        let classes = predicted_classes(model, &x)?;
        let mut batch_records: Vec<ImageRecord> = indices
            .iter()
            .zip(&classes)
            .map(|(&index, &class)| ImageRecord {
                index,
                class,
                scores: vec![None; columns.len()],
                rank_correlations: vec![None; pairs.len()],
                seconds: vec![0.0; columns.len()],
            })
            .collect();
        // heats[column][image], upsampled and normalised; None where a column skips an image.
        let mut heats: Vec<Vec<Option<Vec<f64>>>> = vec![vec![None; indices.len()]; columns.len()];
        if !closed_columns.is_empty() {
            let t0 = Instant::now();
            let maps = explain_batch(model, &x, &classes, settings.score, &closed_columns)?;
            for (&col, column_maps) in closed.iter().zip(maps) {
                heats[col] = column_maps
                    .into_iter()
                    .map(|e| {
                        Some(normalize(&upsample_bilinear(
                            &e.map, e.height, e.width, SIDE, SIDE,
                        )))
                    })
                    .collect();
            }
            // One batch made every closed-form map: each is charged an equal share.
            let share = t0.elapsed().as_secs_f64() / (closed.len() * indices.len()) as f64;
            for r in &mut batch_records {
                closed.iter().for_each(|&col| r.seconds[col] = share);
            }
        }
        for (col, &(method, layer)) in columns.iter().enumerate() {
            if !method.is_exact() {
                continue;
            }
            for (i, &index) in indices.iter().enumerate() {
                if index >= exact_images {
                    continue;
                }
                let t0 = Instant::now();
                let xi = x.narrow(0, i, 1)?;
                let heat = heat_map(
                    model,
                    &xi,
                    classes[i],
                    layer,
                    method,
                    settings.score,
                    &mut |_, _| {},
                )?;
                batch_records[i].seconds[col] = t0.elapsed().as_secs_f64();
                heats[col][i] = Some(heat);
            }
        }
        for (p, &(c, e)) in pairs.iter().enumerate() {
            for (i, r) in batch_records.iter_mut().enumerate() {
                if let (Some(a), Some(b)) = (&heats[c][i], &heats[e][i]) {
                    r.rank_correlations[p] = Some(crate::sanity::spearman(a, b));
                }
            }
        }
        // Every map's curve images, in one list, each scored for its image's class.
        let mut batch = Vec::new();
        let mut batch_classes = Vec::new();
        let mut owners = Vec::new();
        for (col, column_heats) in heats.iter().enumerate() {
            for (i, heat) in column_heats.iter().enumerate() {
                if let Some(heat) = heat {
                    let image = &pixels[i * PIXELS..(i + 1) * PIXELS];
                    batch.extend(curve_images(image, heat, steps)?);
                    batch_classes.extend(std::iter::repeat_n(classes[i], per_map));
                    owners.push((col, i));
                }
            }
        }
        let p = class_probabilities(model, &batch, &batch_classes)?;
        for ((col, i), p) in owners.into_iter().zip(p.chunks(per_map)) {
            let road = if settings.road {
                let heat = heats[col][i].as_ref().expect("an owner has a map");
                let image = &pixels[i * PIXELS..(i + 1) * PIXELS];
                // The imputation's noise: one stream per (column, image).
                let mut rng = Rng::new(((col as u64) << 32) ^ indices[i] as u64);
                let r = crate::road::road_scores(
                    image,
                    heat,
                    classes[i],
                    SIDE,
                    &mut |imgs, n, c| class_probability(model, imgs, n, c),
                    &mut rng,
                )?;
                Some((r.morf(), r.lerf()))
            } else {
                None
            };
            batch_records[i].scores[col] = Some((scores_from_probabilities(p, steps)?, road));
        }
        if let Some(writer) = writer.as_mut() {
            writer.append(&batch_records)?;
        }
        records.extend(batch_records);
        start += indices.len();
    }
    progress("metrics", images, images);
    Ok(summarize(&records, &columns, &pairs, settings.road))
}

/// The rows and comparisons of [`test_set_metrics`] from its per-image records.
fn summarize(
    records: &[ImageRecord],
    columns: &[(Method, usize)],
    pairs: &[(usize, usize)],
    road: bool,
) -> TestSetMetrics {
    let column = |col: usize| -> Vec<crate::metrics_log::MapFigures> {
        records
            .iter()
            .filter_map(|r| r.scores[col].clone())
            .collect()
    };
    let rows = columns
        .iter()
        .enumerate()
        .map(|(col, &(method, layer))| {
            let figures = column(col);
            let scores: Vec<ImageScores> = figures.iter().map(|f| f.0.clone()).collect();
            let seconds: f64 = records.iter().map(|r| r.seconds[col]).sum();
            MetricsRow {
                method,
                layer,
                summary: Summary::of(&scores),
                seconds_per_map: seconds / scores.len().max(1) as f64,
                road: road.then(|| {
                    let (morf, lerf): (Vec<f64>, Vec<f64>) =
                        figures.iter().filter_map(|f| f.1).unzip();
                    RoadSummary {
                        morf: mean_and_se(&morf),
                        lerf: mean_and_se(&lerf),
                    }
                }),
            }
        })
        .collect();
    let closed_vs_exact = pairs
        .iter()
        .enumerate()
        .map(|(p, &(c, e))| {
            // The images the exact column saw, each with the closed form's figures beside.
            let both: Vec<_> = records
                .iter()
                .filter_map(|r| match (&r.scores[e], &r.scores[c]) {
                    (Some(x), Some(y)) => Some((x, y)),
                    _ => None,
                })
                .collect();
            let paired = |f: &dyn Fn(&ImageScores) -> f64, scale: f64| {
                let d: Vec<f64> = both
                    .iter()
                    .map(|(x, y)| scale * (f(&x.0) - f(&y.0)))
                    .collect();
                mean_and_se(&d)
            };
            let road_paired = |f: &dyn Fn((f64, f64)) -> f64| {
                let d: Vec<f64> = both
                    .iter()
                    .filter_map(|(x, y)| Some(f(x.1?) - f(y.1?)))
                    .collect();
                mean_and_se(&d)
            };
            let correlations: Vec<f64> = records
                .iter()
                .filter_map(|r| r.rank_correlations[p])
                .collect();
            ClosedVsExact {
                exact: columns[e].0,
                layer: columns[e].1,
                images: both.len(),
                rank_correlation: mean_and_se(&correlations),
                differences: [
                    paired(&|s| s.confidence_drop(), 100.0),
                    paired(&|s| s.increased(), 100.0),
                    paired(&|s| s.deletion_auc, 1.0),
                    paired(&|s| s.insertion_auc, 1.0),
                ],
                road_differences: road.then(|| [road_paired(&|r| r.0), road_paired(&|r| r.1)]),
            }
        })
        .collect();
    TestSetMetrics {
        rows,
        closed_vs_exact,
    }
}

/// Writes `metrics.json`, adds the same figures to `cam.json` under `"metrics"` when a run
/// wrote one into `out`, and returns the tables as Markdown.
pub fn save_metrics(metrics: &TestSetMetrics, score: Score, out: &Path) -> Result<String> {
    let json = serde_json::json!({
        "score": score.name(),
        "rows": metrics.rows.iter().map(MetricsRow::to_json).collect::<Vec<_>>(),
        "closed_form_vs_exact": metrics
            .closed_vs_exact
            .iter()
            .map(ClosedVsExact::to_json)
            .collect::<Vec<_>>(),
    });
    write_json(&out.join("metrics.json"), &json)?;
    let cam_json = out.join("cam.json");
    if cam_json.exists() {
        let text = std::fs::read_to_string(&cam_json)
            .map_err(|e| Error::argument("cam", format!("{}: {e}", cam_json.display())))?;
        let mut cam: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::argument("cam", format!("{}: {e}", cam_json.display())))?;
        if let Some(object) = cam.as_object_mut() {
            object.insert("metrics".into(), json);
            write_json(&cam_json, &cam)?;
        }
    }
    let mut tables = metrics_table(&metrics.rows);
    if !metrics.closed_vs_exact.is_empty() {
        tables.push('\n');
        tables.push_str(&closed_vs_exact_table(&metrics.closed_vs_exact));
    }
    Ok(tables)
}

/// The closed-form/exact comparison as a Markdown table.
pub fn closed_vs_exact_table(rows: &[ClosedVsExact]) -> String {
    let road = rows.iter().any(|r| r.road_differences.is_some());
    let mut t = String::from(
        "| exact method vs gradcam++ | layer | images | rank correlation | Δ Average Drop % | Δ Increase in Confidence % | Δ deletion AUC | Δ insertion AUC |",
    );
    if road {
        t.push_str(" Δ ROAD MoRF | Δ ROAD LeRF |");
    }
    t.push_str("\n|---|---|---:|---:|---:|---:|---:|---:|");
    if road {
        t.push_str("---:|---:|");
    }
    t.push('\n');
    for r in rows {
        let d = &r.differences;
        t.push_str(&format!(
            "| {} | {} | {} | {:.3} ± {:.3} | {:+.2} ± {:.2} | {:+.2} ± {:.2} | {:+.4} ± {:.4} | {:+.4} ± {:.4} |",
            r.exact.name(),
            layer_name(r.layer),
            r.images,
            r.rank_correlation.0,
            r.rank_correlation.1,
            d[0].0,
            d[0].1,
            d[1].0,
            d[1].1,
            d[2].0,
            d[2].1,
            d[3].0,
            d[3].1,
        ));
        if let Some(rd) = r.road_differences {
            t.push_str(&format!(
                " {:+.4} ± {:.4} | {:+.4} ± {:.4} |",
                rd[0].0, rd[0].1, rd[1].0, rd[1].1
            ));
        } else if road {
            t.push_str(" | |");
        }
        t.push('\n');
    }
    t
}

/// The metrics as a Markdown table.
pub fn metrics_table(rows: &[MetricsRow]) -> String {
    let road = rows.iter().any(|r| r.road.is_some());
    let mut t = String::from(
        "| method | layer | images | Average Drop % ↓ | Increase in Confidence % ↑ | deletion AUC ↓ | insertion AUC ↑ |",
    );
    if road {
        t.push_str(" ROAD MoRF ↓ | ROAD LeRF ↑ |");
    }
    t.push_str(" ms per map |\n|---|---|---:|---:|---:|---:|---:|");
    if road {
        t.push_str("---:|---:|");
    }
    t.push_str("---:|\n");
    for r in rows {
        let s = &r.summary;
        let se = s.standard_errors;
        t.push_str(&format!(
            "| {} | {} | {} | {:.1} ± {:.1} | {:.1} ± {:.1} | {:.3} ± {:.3} | {:.3} ± {:.3} |",
            r.method.name(),
            layer_name(r.layer),
            s.images,
            s.average_drop,
            se[0],
            s.increase_in_confidence,
            se[1],
            s.deletion_auc,
            se[2],
            s.insertion_auc,
            se[3],
        ));
        if let Some(road) = r.road {
            t.push_str(&format!(
                " {:.3} ± {:.3} | {:.3} ± {:.3} |",
                road.morf.0, road.morf.1, road.lerf.0, road.lerf.1
            ));
        } else if road {
            t.push_str(" | |");
        }
        t.push_str(&format!(" {:.1} |\n", 1e3 * r.seconds_per_map));
    }
    t
}

/// The sanity check of every (method, layer) of `settings` on the first `images` test images,
/// each explained for its label: see [`crate::sanity`]. `fresh(stage)` builds a randomly
/// initialised classifier of the trained one's architecture.
pub fn sanity_checks(
    model: &Classifier,
    fresh: &dyn Fn(usize) -> Result<Classifier>,
    random_labels: Option<&Classifier>,
    test: &Split,
    settings: &CamSettings,
    images: usize,
    progress: &mut Progress<'_>,
) -> Result<Vec<crate::sanity::SanityRow>> {
    settings.validate()?;
    let n = images.min(test.len);
    let indices: Vec<usize> = (0..n).collect();
    let (x, labels) = test
        .batch_at(&indices)
        .map_err(|e| Error::argument("cam", e.to_string()))?;
    let x = x.to_dtype(model_dtype(model))?.to(model.device())?;
    let pairs: Vec<(Tensor, usize)> = (0..n)
        .map(|i| Ok((x.narrow(0, i, 1)?, labels[i])))
        .collect::<Result<_>>()?;
    let columns = settings.columns();
    let mut rows = Vec::with_capacity(columns.len());
    for (done, &(method, layer)) in columns.iter().enumerate() {
        progress(
            &format!("{} {}", method.name(), layer_name(layer)),
            done,
            columns.len(),
        );
        let map = |m: &Classifier, x: &Tensor, c: usize| {
            heat_map(m, x, c, layer, method, settings.score, &mut |_, _| {})
        };
        rows.push(crate::sanity::cascading_randomization(
            model,
            fresh,
            random_labels,
            &pairs,
            &map,
            method.name(),
            layer_name(layer),
        )?);
    }
    progress("done", columns.len(), columns.len());
    Ok(rows)
}

/// Writes `sanity.json` and returns the table as Markdown: mean rank correlation (± s.e.)
/// between trained and randomised maps, by stage of the cascade.
pub fn save_sanity(rows: &[crate::sanity::SanityRow], images: usize, out: &Path) -> Result<String> {
    use crate::sanity::{PASS_BELOW, STAGES};
    let json = serde_json::json!({
        "images": images,
        "stages": STAGES,
        "pass_below": PASS_BELOW,
        "rows": rows.iter().map(|r| serde_json::json!({
            "method": r.method,
            "layer": r.layer,
            "rank_correlation": r.correlations.iter().map(|c| c.0).collect::<Vec<_>>(),
            "standard_error": r.correlations.iter().map(|c| c.1).collect::<Vec<_>>(),
            "passes": r.passes(),
            "random_labels_rank_correlation": r.random_labels.map(|c| c.0),
            "random_labels_standard_error": r.random_labels.map(|c| c.1),
            "passes_random_labels": r.passes_random_labels(),
        })).collect::<Vec<_>>(),
    });
    write_json(&out.join("sanity.json"), &json)?;
    let labels = rows.iter().any(|r| r.random_labels.is_some());
    let mut t = String::from("| method | layer |");
    for s in STAGES {
        t.push_str(&format!(" random: {s} |"));
    }
    t.push_str(" passes |");
    if labels {
        t.push_str(" trained on random labels | passes |");
    }
    t.push_str("\n|---|---|");
    t.push_str(&"---:|".repeat(STAGES.len()));
    t.push_str("---|");
    if labels {
        t.push_str("---:|---|");
    }
    t.push('\n');
    let verdict = |pass: bool| if pass { " yes |" } else { " **no** |" };
    for r in rows {
        t.push_str(&format!("| {} | {} |", r.method, r.layer));
        for (m, se) in &r.correlations {
            t.push_str(&format!(" {m:.2} ± {se:.2} |"));
        }
        t.push_str(verdict(r.passes()));
        if let Some((m, se)) = r.random_labels {
            t.push_str(&format!(" {m:.2} ± {se:.2} |"));
            t.push_str(verdict(m < PASS_BELOW));
        } else if labels {
            t.push_str(" | |");
        }
        t.push('\n');
    }
    Ok(t)
}

/// What the exact Grad-CAM++'s α does at one layer over many images.
#[derive(Clone, Debug)]
pub struct AlphaRow {
    pub layer: usize,
    pub images: usize,
    /// Elements of A with ∂Y/∂a > 0, over all images: the ones whose α reaches the weights.
    pub elements: usize,
    /// Of those, the share whose α lies outside the paper's range [0, ½].
    pub outside_share: f64,
    /// The share whose α's denominator 2·∂²Y + Σ A·∂³Y is negative.
    pub negative_denominator_share: f64,
    /// The largest |α|.
    pub max_abs_alpha: f64,
    /// Shares of images whose map is empty (zero everywhere after the final ReLU): with the
    /// unmodified α, and with α clamped to [0, ½].
    pub empty_share: f64,
    pub empty_share_clamped: f64,
    /// Spearman's rank correlation between the closed-form and the exact map (at the layer's
    /// resolution), mean ± standard error over images: how far the shortcut is from the truth.
    pub closed_form_correlation: (f64, f64),
}

/// The exact α examined at every layer of `settings` over the first `images` test images, each
/// explained for the predicted class with `settings.score`.
pub fn alpha_report(
    model: &Classifier,
    test: &Split,
    settings: &CamSettings,
    images: usize,
    progress: &mut Progress<'_>,
) -> Result<Vec<AlphaRow>> {
    use crate::maps::{plus_plus_alpha, plus_plus_weights_from_alpha};
    settings.validate()?;
    let n = images.min(test.len);
    let mut rows = Vec::new();
    for (li, &layer) in settings.layers.iter().enumerate() {
        let (mut elements, mut outside, mut negative, mut max_abs) =
            (0usize, 0usize, 0usize, 0.0f64);
        let (mut empty, mut empty_clamped) = (0usize, 0usize);
        let mut correlations = Vec::with_capacity(n);
        for index in 0..n {
            progress(layer_name(layer), li * n + index, settings.layers.len() * n);
            let (x, _) = test
                .batch_at(&[index])
                .map_err(|e| Error::argument("cam", e.to_string()))?;
            let x = x.to_dtype(model_dtype(model))?.to(model.device())?;
            let class = predicted_class(model, &x)?;
            let target = Target {
                model,
                layer,
                class,
                score: settings.score,
            };
            let a = target.activation(&x)?;
            let positions = a.dim(2)? * a.dim(3)?;
            let values = a.to_vec_f64();
            let d = target.taylor_diagonal(&a, &mut |_, _| {})?;
            let alpha = plus_plus_alpha(&values, &d.second, &d.third, positions);
            let channel_sums: Vec<f64> = values.chunks(positions).map(|c| c.iter().sum()).collect();
            for (e, &alpha_e) in alpha.iter().enumerate() {
                // Only elements with ∂Y/∂a > 0 reach w_k = Σ α·ReLU(∂Y/∂a).
                if d.first[e] <= 0.0 {
                    continue;
                }
                let channel = channel_sums[e / positions];
                elements += 1;
                if !(0.0..=0.5).contains(&alpha_e) {
                    outside += 1;
                }
                if 2.0 * d.second[e] + channel * d.third[e] < 0.0 {
                    negative += 1;
                }
                max_abs = max_abs.max(alpha_e.abs());
            }
            let is_empty = |alpha: &[f64]| {
                let w = plus_plus_weights_from_alpha(alpha, &d.first, positions);
                (0..positions).all(|p| {
                    w.iter()
                        .enumerate()
                        .map(|(k, wk)| wk * values[k * positions + p])
                        .sum::<f64>()
                        <= 0.0
                })
            };
            empty += usize::from(is_empty(&alpha));
            let clamped: Vec<f64> = alpha.iter().map(|v| v.clamp(0.0, 0.5)).collect();
            empty_clamped += usize::from(is_empty(&clamped));
            let exact = target.explain(&x, Method::GradCamPlusPlusExact)?;
            let closed = target.explain(&x, Method::GradCamPlusPlus)?;
            correlations.push(crate::sanity::spearman(&closed.map, &exact.map));
        }
        let (mean, se) = mean_and_se(&correlations);
        rows.push(AlphaRow {
            layer,
            images: n,
            elements,
            outside_share: outside as f64 / elements.max(1) as f64,
            negative_denominator_share: negative as f64 / elements.max(1) as f64,
            max_abs_alpha: max_abs,
            empty_share: empty as f64 / n.max(1) as f64,
            empty_share_clamped: empty_clamped as f64 / n.max(1) as f64,
            closed_form_correlation: (mean, se),
        });
    }
    progress("done", 1, 1);
    Ok(rows)
}

/// Writes `alpha.json` and returns the report as Markdown.
pub fn save_alpha_report(rows: &[AlphaRow], score: Score, out: &Path) -> Result<String> {
    let json = serde_json::json!({
        "score": score.name(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "layer": layer_name(r.layer),
            "images": r.images,
            "elements_with_positive_gradient": r.elements,
            "alpha_outside_0_half_share": r.outside_share,
            "negative_denominator_share": r.negative_denominator_share,
            "max_abs_alpha": r.max_abs_alpha,
            "empty_map_share": r.empty_share,
            "empty_map_share_clamped": r.empty_share_clamped,
            "closed_form_vs_exact_rank_correlation": r.closed_form_correlation.0,
            "closed_form_vs_exact_rank_correlation_standard_error": r.closed_form_correlation.1,
        })).collect::<Vec<_>>(),
    });
    write_json(&out.join("alpha.json"), &json)?;
    let mut t = String::from(
        "| layer | images | elements with ∂Y/∂a > 0 | α outside [0, ½] | denominator < 0 | largest abs(α) | empty maps | empty maps, α clamped | rank correlation, closed form vs exact |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {:.1}% | {:.1}% | {:.3e} | {:.1}% | {:.1}% | {:.3} ± {:.3} |\n",
            layer_name(r.layer),
            r.images,
            r.elements,
            100.0 * r.outside_share,
            100.0 * r.negative_denominator_share,
            r.max_abs_alpha,
            100.0 * r.empty_share,
            100.0 * r.empty_share_clamped,
            r.closed_form_correlation.0,
            r.closed_form_correlation.1
        ));
    }
    Ok(t)
}
