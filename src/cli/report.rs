//! The course's report: one self-contained HTML page (pictures embedded as data URIs) and a
//! JSON file with every figure.

use super::Error;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How a part ended.
pub enum Status {
    Ran,
    /// Its data was missing: why, and how to get it.
    Skipped(String),
    /// A step failed: which, and why.
    Failed(String),
}

impl Status {
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ran => "ran",
            Status::Skipped(_) => "skipped",
            Status::Failed(_) => "failed",
        }
    }
}

pub struct StepRun {
    pub label: String,
    /// The command line that reproduces the step.
    pub command: String,
    pub seconds: f64,
    /// What the step printed that the report shows (the gradient-check tables).
    pub output: String,
}

pub struct Figure {
    pub path: PathBuf,
    pub caption: String,
}

pub struct PartRun {
    pub number: usize,
    pub title: String,
    pub status: Status,
    pub steps: Vec<StepRun>,
    pub figures: Vec<Figure>,
    /// The part's numbers, as summary.json records them.
    pub summary: Value,
}

pub struct CourseRun {
    pub version: String,
    pub device: String,
    pub full: bool,
    pub started_at: String,
    pub seconds: f64,
    pub parts: Vec<PartRun>,
}

/// The cost functions as the code implements them, per part.
fn equations(part: usize) -> &'static str {
    match part {
        1 => {
            r#"<p>Order 1: the numerical Jacobian by central differences,
J[o, i] ≈ (f(x + ε·e<sub>i</sub>) − f(x − ε·e<sub>i</sub>))<sub>o</sub> / 2ε in f64 (ε = 10<sup>−6</sup>), against the
vector–Jacobian products uᵀJ that backward computes. Order k &gt; 1: the check of order k − 1
applied to (x, v) ↦ ∂⟨f(x), v⟩/∂x computed with <code>create_graph</code>. A value passes when
|analytical − numerical| ≤ 10<sup>−5</sup> + 10<sup>−3</sup>·|numerical|. On the GPU, the same derivatives in f32 are
compared with the CPU's f64: |gpu − cpu| ≤ 10<sup>−4</sup>·|cpu| + 10<sup>−4</sup>·max(1, max|cpu|).</p>"#
        }
        2 => {
            r#"<ul>
<li><b>Regularised autoencoder</b>: min E<sub>x</sub>[‖x − D(E(x))‖²] + λ‖W‖²<sub>F</sub> (mean squared error per pixel; the penalty sums the squared weights of every layer).</li>
<li><b>VAE</b>: z = μ + σ·ε, ε ~ N(0, I); per image −E<sub>q</sub>[log p(x|z)] + λ·KL(N(μ, σ²) ‖ N(0, I)), KL = ½Σ(μ² + σ² − log σ² − 1), the likelihood Bernoulli (BCE summed over pixels). λ = 1 is the negative ELBO.</li>
<li><b>GAN</b>: min<sub>G</sub> max<sub>D</sub> E<sub>x</sub>[log D(x)] + E<sub>z</sub>[log(1 − D(G(z)))], one step of each per batch; the generator minimises −E<sub>z</sub>[log D(G(z))] (non-saturating) by default.</li>
<li><b>Adversarial autoencoder</b>: D minimises −E<sub>h~p(h)</sub>[log D(h)] − E<sub>x</sub>[log(1 − D(E(x)))]; the autoencoder minimises E<sub>x</sub>[−log p(x | Dec(E(x)))] + λ·(−E<sub>x</sub>[log D(E(x))]).</li>
</ul>"#
        }
        3 => {
            r#"<p><b>Classifier</b>: L = CE(head(E(x)), y) + β·BCE(Dec(E(x)), x)/pixel + λ·Σ‖W‖²<sub>F</sub>, the head a global average pool and one linear layer.</p>
<p><b>Maps</b> of a layer's activations A<sup>k</sup><sub>ij</sub> for the class score Y (here exp of the logit), each ReLU(Σ<sub>k</sub> w<sub>k</sub>A<sup>k</sup>):
CAM w<sub>k</sub> = the head's weight of channel k (no ReLU; last layer only); Grad-CAM w<sub>k</sub> = mean<sub>ij</sub> ∂Y/∂A<sup>k</sup><sub>ij</sub>;
Grad-CAM++ w<sub>k</sub> = Σ<sub>ij</sub> α<sup>k</sup><sub>ij</sub>·ReLU(∂Y/∂A<sup>k</sup><sub>ij</sub>) with
α<sup>k</sup><sub>ij</sub> = ∂²Y/∂(A<sup>k</sup><sub>ij</sub>)² / (2·∂²Y/∂(A<sup>k</sup><sub>ij</sub>)² + Σ<sub>ab</sub>A<sup>k</sup><sub>ab</sub>·∂³Y/∂(A<sup>k</sup><sub>ij</sub>)³),
the second and third derivatives either in the usual closed form (powers of the gradient, exact for exp of a piecewise-linear score)
or <i>exact</i>, as the engine's derivatives of order 2 and 3.</p>
<p><b>Metrics</b>: deletion and insertion AUC (the class probability as the most salient pixels are removed or added), average drop and increase in confidence when only the map's region is kept.</p>"#
        }
        4 => {
            r#"<p>One encoder E shared by both identities, one decoder per identity. Per step, with warped inputs x̃ and targets x, and L(y, x) = ‖y − x‖<sub>1</sub> + DSSIM(y, x) (L1 as a mean per pixel; DSSIM = (1 − SSIM)/2):
L<sub>E,D</sub> = ½[L(D<sub>A</sub>(E(x̃<sub>A</sub>)), x<sub>A</sub>) + L(D<sub>B</sub>(E(x̃<sub>B</sub>)), x<sub>B</sub>)] + w·(−E[log D<sub>h</sub>(E(x̃))]) + c·BCE(C(E(x̃)), ½),
while the latent discriminator D<sub>h</sub> minimises −E<sub>h~N(0,I)</sub>[log D<sub>h</sub>(h)] − E[log(1 − D<sub>h</sub>(E(x̃)))] (the codes are pulled toward the prior)
and the identity critic C minimises −E[log C(E(x̃<sub>A</sub>))] − E[log(1 − C(E(x̃<sub>B</sub>)))] (the encoder learns to leave it unable to tell whose face a code is).
The learning rate decays as lr·½(1 + cos(πt/T)), and faces are drawn with a moving average of the weights (decay 0.999).
A swap is D<sub>B</sub>(E(x<sub>A</sub>)); mixing decodes (1 − t)·h<sub>a</sub> + t·h<sub>b</sub>, or the first dimensions of h<sub>a</sub> with the rest of h<sub>b</sub>.</p>"#
        }
        5 => {
            r#"<p><b>Likelihood</b>: the importance-weighted bound L<sub>K</sub> = E[log (1/K) Σ<sub>k</sub> p(x, z<sub>k</sub>) / q(z<sub>k</sub>|x)] ≤ log p(x), z<sub>k</sub> ~ q(z|x) (Burda et al. 2016); K = 1 is the ELBO, and L<sub>K</sub> rises toward log p(x) with K.
The likelihood p(x|z) is the Bernoulli one the VAE was trained with, evaluated at the pixel intensities (not a normalised density over [0, 1]<sup>784</sup>; <code>--binarize SEED</code> gives the binarised protocol).</p>
<p><b>Sample quality</b> in the features f of the course's classifier (global average pool of conv3): FID = ‖μ<sub>1</sub> − μ<sub>2</sub>‖² + tr(Σ<sub>1</sub> + Σ<sub>2</sub> − 2(Σ<sub>1</sub>Σ<sub>2</sub>)<sup>½</sup>);
KID = the unbiased MMD² with k(x, y) = (xᵀy/d + 1)³ over random subsets; precision = the share of samples inside the union of the real features' 3-nearest-neighbour balls, recall the converse (Kynkäänniemi et al. 2019).
Every figure depends on the classifier, so each names its checkpoint's hash.</p>"#
        }
        _ => "",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648), for data URIs.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The current time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc (not found on PATH)".into())
}

fn sci(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".to_string(), |x| format!("{x:.2e}"))
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}"))
}

/// A part's tables of numbers, from its summary.
fn tables(part: &PartRun) -> String {
    let s = &part.summary;
    let mut h = String::new();
    match part.number {
        1 => {
            for check in s["checks"].as_array().into_iter().flatten() {
                let _ = write!(
                    h,
                    "<p>{}: <b>{} checks of {} ops, {} failed</b>; the worst error is {} of its tolerance.</p>",
                    escape(check["device"].as_str().unwrap_or("")),
                    check["checks"],
                    check["ops"],
                    check["failed"],
                    sci(&check["worst_err_over_tol"])
                );
                h.push_str("<details><summary>Every op and order</summary><table><tr><th>op</th><th>order</th><th>worst error / tolerance</th><th></th></tr>");
                for r in check["rows"].as_array().into_iter().flatten() {
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(r["op"].as_str().unwrap_or("")),
                        r["order"],
                        sci(&r["worst_ratio"]),
                        if r["passed"] == true {
                            "pass"
                        } else {
                            "<b>FAIL</b>"
                        }
                    );
                }
                h.push_str("</table></details>");
            }
        }
        2 => {
            h.push_str("<table><tr><th>model</th><th>epochs</th><th>test loss</th><th>MSE / pixel</th><th>negative ELBO (nats)</th><th>discriminator</th><th>generator</th><th>images/s</th></tr>");
            for m in ["ae", "vae", "gan", "aae"] {
                let e = &s[m];
                if e.is_null() {
                    continue;
                }
                let t = &e["test"];
                let _ = write!(
                    h,
                    "<tr><td>{m}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e["epoch"],
                    num(&t["loss"], 4),
                    num(&t["mse"], 5),
                    num(&t["negative_elbo"], 2),
                    num(&t["discriminator"], 3),
                    num(&t["generator"], 3),
                    num(&e["images_per_s"], 0)
                );
            }
            h.push_str("</table>");
        }
        3 => {
            let c = &s["classifier"];
            if !c.is_null() {
                let _ = write!(
                    h,
                    "<p>After {} epochs: <b>test accuracy {}%</b>, cross-entropy {}, reconstruction BCE {} nats/pixel.</p>",
                    c["epoch"],
                    num(&json!(c["test"]["accuracy"].as_f64().map(|a| 100.0 * a)), 2),
                    num(&c["test"]["cross_entropy"], 4),
                    num(&c["test"]["reconstruction_bce"], 4)
                );
            }
            cam_tables(s, &mut h);
        }
        4 => {
            let e = &s["evaluation"];
            if !e.is_null() {
                let (a, b) = (&e["a"], &e["b"]);
                let _ = write!(
                    h,
                    "<p>After {} steps, on the held-out faces:</p><table><tr><th></th><th>A {}</th><th>B {}</th></tr>",
                    e["steps"],
                    escape(a["identity"].as_str().unwrap_or("")),
                    escape(b["identity"].as_str().unwrap_or(""))
                );
                for (label, key, digits) in [
                    ("held-out faces", "held_out_faces", 0),
                    ("reconstruction MAE", "reconstruction_mae", 4),
                    ("reconstruction PSNR (dB)", "reconstruction_psnr_db", 2),
                    ("reconstruction SSIM", "reconstruction_ssim", 4),
                    ("cycle MAE (swap, swap back)", "cycle_mae", 4),
                    (
                        "swapped, labelled as the target identity",
                        "identity_score",
                        3,
                    ),
                ] {
                    let _ = write!(
                        h,
                        "<tr><td>{label}</td><td>{}</td><td>{}</td></tr>",
                        num(&a[key], digits),
                        num(&b[key], digits)
                    );
                }
                let _ = write!(
                    h,
                    "</table><p>The identity classifier that judges the swaps: {}% accuracy on the real held-out faces after {} steps.</p>",
                    num(&json!(e["identity_classifier"]["held_out_accuracy"].as_f64().map(|a| 100.0 * a)), 1),
                    e["identity_classifier"]["training_steps"]
                );
            }
        }
        5 => judged_tables(s, &mut h),
        _ => {}
    }
    h
}

/// A mean ± its standard error, as the tables print it.
fn with_se(mean: &Value, se: &Value, digits: usize) -> String {
    format!("{} ± {}", num(mean, digits), num(se, digits))
}

/// One row per method and layer: the faithfulness metrics ± standard errors, and ROAD's
/// MoRF/LeRF where the rows have them.
fn metrics_table(rows: &[Value], h: &mut String) {
    let road = rows.iter().any(|r| !r["road_morf"].is_null());
    h.push_str("<table><tr><th>method</th><th>layer</th><th>images</th><th>deletion AUC ↓</th><th>insertion AUC ↑</th><th>average drop % ↓</th><th>increase in confidence % ↑</th>");
    if road {
        h.push_str("<th>ROAD MoRF ↓</th><th>ROAD LeRF ↑</th>");
    }
    h.push_str("<th>ms per map</th></tr>");
    for r in rows {
        let se = &r["standard_errors"];
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(r["method"].as_str().unwrap_or("")),
            escape(r["layer"].as_str().unwrap_or("")),
            r["images"],
            with_se(&r["deletion_auc"], &se["deletion_auc"], 3),
            with_se(&r["insertion_auc"], &se["insertion_auc"], 3),
            with_se(&r["average_drop_percent"], &se["average_drop_percent"], 1),
            with_se(
                &r["increase_in_confidence_percent"],
                &se["increase_in_confidence_percent"],
                1
            ),
        );
        if road {
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                with_se(&r["road_morf"], &r["road_morf_standard_error"], 3),
                with_se(&r["road_lerf"], &r["road_lerf_standard_error"], 3)
            );
        }
        let _ = write!(
            h,
            "<td>{}</td></tr>",
            num(&json!(r["seconds_per_map"].as_f64().map(|x| 1e3 * x)), 1)
        );
    }
    h.push_str("</table>");
}

/// Part 3's tables: the faithfulness metrics (± standard errors), the sanity check, and the
/// closed-form Grad-CAM++ against the exact one with the softmax score.
pub(super) fn cam_tables(s: &Value, h: &mut String) {
    let own_images = s["cam_metrics"]
        .as_array()
        .and_then(|rows| rows.iter().filter_map(|r| r["images"].as_u64()).max());
    if let Some(rows) = s["cam_metrics"].as_array() {
        let _ = write!(
            h,
            "<p>Faithfulness over the first {} test images, each explained for its predicted class, ± standard error over images.</p>",
            own_images.map_or("–".to_string(), |n| n.to_string())
        );
        metrics_table(rows, h);
    }
    // The reference table over the whole test set, measured once on the default classifier,
    // when this run did not measure its own.
    let reference = &s["cam_full_test_set"];
    if let (Some(rows), true) = (
        reference["rows"].as_array(),
        own_images.is_none_or(|n| n < 10_000),
    ) {
        let _ = write!(
            h,
            "<p>The same over all 10,000 test images, with ROAD (remove and debias, most- and least-relevant first, mean over the percentiles 10–90), measured once by <code>{}</code> on {} ({}; not this run's classifier: <code>ferrograd course --full</code> measures its own):</p>",
            escape(reference["command"].as_str().unwrap_or("ferrograd cam --metrics")),
            escape(reference["classifier"].as_str().unwrap_or("the default classifier")),
            escape(reference["measured"].as_str().unwrap_or("")),
        );
        metrics_table(rows, h);
    }
    let sanity = &s["cam_sanity"];
    if let (Some(rows), Some(stages)) = (sanity["rows"].as_array(), sanity["stages"].as_array()) {
        let _ = write!(
            h,
            "<p>Sanity check (Adebayo et al. 2018) over {} test images: the rank correlation between each map on the trained classifier and on copies whose weights are random from the head down. A method passes when its maps decorrelate (below {}) once every weight is random.</p><table><tr><th>method</th><th>layer</th>",
            sanity["images"],
            num(&sanity["pass_below"], 1)
        );
        for stage in stages {
            let _ = write!(
                h,
                "<th>random: {}</th>",
                escape(stage.as_str().unwrap_or(""))
            );
        }
        h.push_str("<th>passes</th></tr>");
        for r in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td>",
                escape(r["method"].as_str().unwrap_or("")),
                escape(r["layer"].as_str().unwrap_or(""))
            );
            let means = r["rank_correlation"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ses = r["standard_error"].as_array().cloned().unwrap_or_default();
            for (m, e) in means.iter().zip(&ses) {
                let _ = write!(h, "<td>{}</td>", with_se(m, e, 2));
            }
            let _ = write!(
                h,
                "<td>{}</td></tr>",
                if r["passes"] == true {
                    "yes"
                } else {
                    "<b>no</b>"
                }
            );
        }
        h.push_str("</table>");
    }
    let comparison = &s["cam_closed_vs_exact"];
    if let Some(rows) = comparison["closed_form_vs_exact"].as_array() {
        let _ = write!(
            h,
            "<p>The closed form against the exact Grad-CAM++ with Y = {} (the closed form uses powers of ∂Y/∂A, which are the true higher derivatives only for Y = exp(S) with S piecewise linear): rank correlation of the two maps, and the difference exact − closed form of each metric, image by image (± standard error).</p><table><tr><th>layer</th><th>images</th><th>rank correlation</th><th>Δ deletion AUC</th><th>Δ insertion AUC</th><th>Δ average drop %</th><th>Δ increase in confidence %</th></tr>",
            escape(comparison["score"].as_str().unwrap_or("?"))
        );
        for r in rows {
            let d = &r["exact_minus_closed_form"];
            let pair = |v: &Value, digits| with_se(&v["mean"], &v["standard_error"], digits);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(r["layer"].as_str().unwrap_or("")),
                r["images"],
                pair(&r["rank_correlation"], 3),
                pair(&d["deletion_auc"], 4),
                pair(&d["insertion_auc"], 4),
                pair(&d["average_drop_percent"], 2),
                pair(&d["increase_in_confidence_percent"], 2)
            );
        }
        h.push_str("</table>");
    }
}

/// Part 5's tables: the VAE's likelihood bounds, every sampler's FID/KID/precision/recall with
/// the test-vs-train floor, the λ sweep and the GAN losses compared.
fn judged_tables(s: &Value, h: &mut String) {
    let evals = &s["evaluations"];
    let likelihood = &evals["vae"]["likelihood"];
    if !likelihood.is_null() {
        let _ = write!(
            h,
            "<p>VAE likelihood on the first {} test images ({}), nats per image ± standard error over images:</p><table><tr><th>figure</th><th>nats</th></tr><tr><td>negative ELBO</td><td>{} ± {}</td></tr>",
            likelihood["images"],
            escape(likelihood["data"].as_str().unwrap_or("")),
            num(&likelihood["negative_elbo"], 2),
            num(&likelihood["negative_elbo_standard_error"], 2)
        );
        for b in likelihood["negative_iwae_bounds"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let _ = write!(
                h,
                "<tr><td>−log p(x) ≤ IWAE, K = {}</td><td>{} ± {}</td></tr>",
                b["k"],
                num(&b["nats"], 2),
                num(&b["standard_error"], 2)
            );
        }
        h.push_str("</table>");
    }
    let mut quality_header = false;
    for m in ["vae", "gan", "aae"] {
        let q = &evals[m]["sample_quality"];
        if q.is_null() {
            continue;
        }
        if !quality_header {
            let _ = write!(
                h,
                "<p>Sample quality in the features of {} (its penultimate layer), {} samples against the test set; the last row is the test set against as many training images, the floor:</p><table><tr><th>samples</th><th>FID ↓</th><th>KID ↓ (± s.e.)</th><th>precision ↑</th><th>recall ↑</th></tr>",
                escape(q["feature_classifier"].as_str().unwrap_or("")),
                q["samples_vs_test"]["samples"]
            );
            quality_header = true;
        }
        quality_row(h, m, &q["samples_vs_test"]);
    }
    if quality_header {
        let floor = ["vae", "gan", "aae"]
            .iter()
            .map(|m| &evals[*m]["sample_quality"]["test_vs_train"])
            .find(|f| !f.is_null());
        if let Some(f) = floor {
            quality_row(h, "test vs train (floor)", f);
        }
        h.push_str("</table>");
    }
    let sweep = &s["lambda_sweep"];
    if let Some(points) = sweep["points"].as_array() {
        let _ = write!(
            h,
            "<p>The autoencoder across λ ({} epochs on {} images, seed {}):</p><table><tr><th>λ</th><th>test MSE per pixel</th><th>Σ‖W‖²<sub>F</sub></th></tr>",
            sweep["epochs"], sweep["train_images"], sweep["seed"]
        );
        for p in points {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                sci(&p["lambda"]),
                num(&p["test_mse"], 5),
                num(&p["weight_norm_squared"], 1)
            );
        }
        h.push_str("</table>");
    }
    let gan = &s["gan_losses"];
    if let Some(runs) = gan["runs"].as_array() {
        let _ = write!(
            h,
            "<p>The GAN with each generator loss, same seed and budget ({} epochs on {} images); FID on {} samples in the features of {}:</p><table><tr><th>generator loss</th><th>FID by epoch</th><th>D(G(z)) at step 0 → last probe</th><th>‖∇<sub>G</sub>‖ minimax / non-saturating at step 0</th></tr>",
            gan["epochs"],
            gan["train_images"],
            gan["fid_samples"],
            escape(gan["feature_classifier"].as_str().unwrap_or(""))
        );
        for r in runs {
            let fids: Vec<String> = r["fid_by_epoch"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| num(f, 1))
                .collect();
            let probes = r["probes"].as_array().cloned().unwrap_or_default();
            let (first, last) = (probes.first(), probes.last());
            let d = |p: Option<&Value>| p.map_or("–".to_string(), |p| num(&p["d_fake_mean"], 3));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{} → {} (step {})</td><td>{} / {}</td></tr>",
                escape(r["generator_loss"].as_str().unwrap_or("")),
                fids.join(", "),
                d(first),
                d(last),
                last.map_or(Value::Null, |p| p["step"].clone()),
                first.map_or("–".into(), |p| sci(&p["generator_grad_norm_minimax"])),
                first.map_or("–".into(), |p| sci(
                    &p["generator_grad_norm_non_saturating"]
                ))
            );
        }
        h.push_str("</table>");
    }
}

fn quality_row(h: &mut String, label: &str, q: &Value) {
    let _ = write!(
        h,
        "<tr><td>{label}</td><td>{}</td><td>{} ± {}</td><td>{}</td><td>{}</td></tr>",
        num(&q["fid"], 2),
        num(&q["kid"], 4),
        num(&q["kid_standard_error"], 4),
        num(&q["precision"], 3),
        num(&q["recall"], 3)
    );
}

/// Writes `out/index.html` and `out/summary.json` (each through a temporary file and a rename).
pub fn write(out: &Path, run: &CourseRun) -> Result<(), Error> {
    let write_atomically = |name: &str, text: &str| -> Result<(), Error> {
        let path = out.join(name);
        ferrograd_nn::checkpoint::write_atomically(&path, text.as_bytes()).map_err(|e| {
            Error::File {
                path,
                message: format!("cannot write: {e}"),
            }
        })
    };
    let versions = json!({
        "ferrograd": run.version,
        "rustc": rustc_version(),
        "wgpu": "30",
        "os": format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    });
    let summary = json!({
        "versions": versions,
        "device": run.device,
        "settings": if run.full { "full" } else { "tour" },
        "started": run.started_at,
        "seconds": run.seconds,
        "every_part_ran": run.parts.iter().all(|p| matches!(p.status, Status::Ran)),
        "parts": run.parts.iter().map(|p| json!({
            "part": p.number,
            "title": p.title,
            "status": p.status.word(),
            "reason": match &p.status { Status::Ran => Value::Null, Status::Skipped(r) | Status::Failed(r) => json!(r) },
            "seconds": p.steps.iter().map(|s| s.seconds).sum::<f64>(),
            "steps": p.steps.iter().map(|s| json!({"step": s.label, "command": s.command, "seconds": s.seconds})).collect::<Vec<_>>(),
            "figures": p.summary,
            "pictures": p.figures.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let json_text = serde_json::to_string_pretty(&summary).map_err(|e| Error::File {
        path: out.join("summary.json"),
        message: e.to_string(),
    })?;

    let mut h = String::new();
    h.push_str(r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ferrograd: the course</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right} td:first-child,th:first-child{text-align:left}
code,pre{background:#f5f5f5;padding:.1em .3em;border-radius:3px;font-size:13px} pre{padding:.6em;overflow-x:auto}
figure{display:inline-block;margin:.6em 1.5% .6em 0;vertical-align:top;max-width:48%} figure img{max-width:100%;border:1px solid #ddd;image-rendering:pixelated}
figcaption{font-size:13px;color:#555;max-width:520px}
.skipped{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em} .failed{background:#fde8e8;border-left:4px solid #d33;padding:.5em 1em}
.meta td{text-align:left}
</style></head><body>
<h1>ferrograd: the course, end to end</h1>
"#);
    let _ = write!(
        h,
        "<table class=\"meta\"><tr><td>started</td><td>{}</td></tr><tr><td>device</td><td>{}</td></tr><tr><td>settings</td><td>{}</td></tr><tr><td>total time</td><td>{:.1} min</td></tr><tr><td>versions</td><td>ferrograd {}, {}, wgpu {}, {}</td></tr></table>",
        escape(&run.started_at),
        escape(&run.device),
        if run.full { "full (<code>--full</code>: the quality targets)" } else { "the short tour (<code>--full</code> reaches the quality targets)" },
        run.seconds / 60.0,
        escape(&run.version),
        escape(versions["rustc"].as_str().unwrap_or("")),
        versions["wgpu"].as_str().unwrap_or(""),
        escape(versions["os"].as_str().unwrap_or(""))
    );
    for part in &run.parts {
        let _ = write!(h, "<h2>{}. {}</h2>", part.number, escape(&part.title));
        match &part.status {
            Status::Skipped(why) => {
                let _ = write!(h, "<p class=\"skipped\">Skipped: {}</p>", escape(why));
            }
            Status::Failed(why) => {
                let _ = write!(h, "<p class=\"failed\">Failed: {}</p>", escape(why));
            }
            Status::Ran => {}
        }
        h.push_str(equations(part.number));
        h.push_str(&tables(part));
        for f in &part.figures {
            let Ok(bytes) = std::fs::read(&f.path) else {
                continue;
            };
            let _ = write!(
                h,
                "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{0}</figcaption></figure>",
                escape(&f.caption),
                base64(&bytes)
            );
        }
        if !part.steps.is_empty() {
            h.push_str("<details><summary>Commands and timings (each reproduces its figures)</summary><table><tr><th>step</th><th>command</th><th>seconds</th></tr>");
            for s in &part.steps {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td style=\"text-align:left\"><code>{}</code></td><td>{:.1}</td></tr>",
                    escape(&s.label),
                    escape(&s.command),
                    s.seconds
                );
            }
            h.push_str("</table></details>");
        }
    }
    // For headless checks (scripts/check_report.sh): how many pictures decoded.
    h.push_str(
        r#"<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
</script></body></html>
"#,
    );
    write_atomically("summary.json", &json_text)?;
    write_atomically("index.html", &h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    /// Part 3's tables read the keys `cam` writes (metrics.json, sanity.json).
    #[test]
    fn the_cam_tables_show_standard_errors_the_sanity_check_and_the_comparison() {
        let pair = |m: f64, se: f64| json!({ "mean": m, "standard_error": se });
        let summary = json!({
            "cam_metrics": [{
                "method": "gradcam", "layer": "conv3", "images": 100,
                "deletion_auc": 0.25, "insertion_auc": 0.61,
                "average_drop_percent": 12.5, "increase_in_confidence_percent": 30.0,
                "standard_errors": {
                    "deletion_auc": 0.012, "insertion_auc": 0.013,
                    "average_drop_percent": 1.5, "increase_in_confidence_percent": 4.5,
                },
                "seconds_per_map": 0.008,
            }],
            "cam_sanity": {
                "images": 8, "stages": ["head", "all"], "pass_below": 0.5,
                "rows": [{
                    "method": "gradcam++", "layer": "conv3",
                    "rank_correlation": [0.9, 0.59], "standard_error": [0.01, 0.02],
                    "passes": false,
                }],
            },
            "cam_full_test_set": {
                "command": "ferrograd cam --metrics --road",
                "classifier": "the 93.2% classifier",
                "measured": "2 cores, 2.6 h",
                "rows": [{
                    "method": "scorecam", "layer": "conv2", "images": 10000,
                    "deletion_auc": 0.3, "insertion_auc": 0.6,
                    "average_drop_percent": 20.0, "increase_in_confidence_percent": 10.0,
                    "standard_errors": {
                        "deletion_auc": 0.002, "insertion_auc": 0.003,
                        "average_drop_percent": 0.25, "increase_in_confidence_percent": 0.5,
                    },
                    "road_morf": 0.412, "road_morf_standard_error": 0.004,
                    "road_lerf": 0.777, "road_lerf_standard_error": 0.005,
                    "seconds_per_map": 0.02,
                }],
            },
            "cam_closed_vs_exact": {
                "score": "softmax",
                "closed_form_vs_exact": [{
                    "layer": "conv1", "images": 64,
                    "rank_correlation": pair(0.931, 0.004),
                    "exact_minus_closed_form": {
                        "deletion_auc": pair(-0.0123, 0.0021),
                        "insertion_auc": pair(0.0042, 0.0011),
                        "average_drop_percent": pair(1.25, 0.5),
                        "increase_in_confidence_percent": pair(-3.13, 1.1),
                    },
                }],
            },
        });
        let mut h = String::new();
        cam_tables(&summary, &mut h);
        for needle in [
            "first 100 test images",
            "0.250 ± 0.012",
            "12.5 ± 1.5",
            "random: head",
            "0.59 ± 0.02",
            "<b>no</b>",
            "Y = softmax",
            "0.931 ± 0.004",
            "-0.0123 ± 0.0021",
            "-3.13 ± 1.10",
            "all 10,000 test images",
            "the 93.2% classifier",
            "ROAD MoRF",
            "0.412 ± 0.004",
            "0.777 ± 0.005",
        ] {
            assert!(h.contains(needle), "'{needle}' missing from {h}");
        }
        // The run's own metrics have no ROAD columns.
        let own = h.split("all 10,000").next().unwrap();
        assert!(!own.contains("ROAD"), "{own}");
        // A run that measured the whole test set shows its own table only.
        let mut full = summary.clone();
        full["cam_metrics"][0]["images"] = json!(10000);
        let mut h = String::new();
        cam_tables(&full, &mut h);
        assert!(!h.contains("the 93.2% classifier"), "{h}");
    }

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
