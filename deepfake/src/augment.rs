//! Training pairs for a face-swap autoencoder, as in the faceswap and DeepFaceLab pipelines.
//!
//! Each face gives a pair (input, target). The target is the face under a small random affine
//! map (rotation, scale, shift, mirror), so the model sees more poses than the data holds. The
//! input is the target further bent by a random smooth warp, so the model must learn what a face
//! of this person looks like, not copy pixels: asked to undo the warp, it redraws the face.
//!
//! All functions work on one face, CHW planar f32 of [`FACE_SIZE`]², and are pure given the
//! random generator, so a seed fixes every pair.
//!
//! Coordinates: pixel (x, y) has its centre at integer (x, y), x to the right and y down, and the
//! image centre is c = ((S - 1) / 2, (S - 1) / 2) for S = FACE_SIZE.

use crate::faces::{FACE_LEN, FACE_SIZE};
use ferrograd_engine::{Error, Result, Rng};

/// How strong the random changes are. Each affine parameter is drawn uniformly from ±its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Rotation about the centre, uniform in ±this many degrees.
    pub rotation_degrees: f64,
    /// Zoom factor 1 + uniform(±scale); must be below 1.
    pub scale: f64,
    /// Shift along x and along y, each uniform in ±shift · FACE_SIZE pixels.
    pub shift: f64,
    /// Mirror left to right with probability 1/2: faces are nearly symmetric, so this doubles
    /// the poses for free.
    pub flip: bool,
    /// Standard deviation of each control point's displacement, as a fraction of FACE_SIZE.
    pub warp: f64,
    /// Control points per side of the warp lattice. The border ones stay put, so below 3 there
    /// is no warp.
    pub grid: usize,
}

impl Default for Augment {
    /// The faceswap defaults: ±10°, ±5 % zoom, ±5 % shift, mirroring, and a 5x5 lattice moved by
    /// 2.5 % of the size (2.5 pixels at 100x100).
    fn default() -> Self {
        Augment {
            rotation_degrees: 10.0,
            scale: 0.05,
            shift: 0.05,
            flip: true,
            warp: 0.025,
            grid: 5,
        }
    }
}

impl Augment {
    /// No change at all: input = target = face. For evaluation, and as a baseline.
    pub fn none() -> Self {
        Augment {
            rotation_degrees: 0.0,
            scale: 0.0,
            shift: 0.0,
            flip: false,
            warp: 0.0,
            grid: 5,
        }
    }

    fn check(&self, op: &'static str) -> Result<()> {
        let fields = [
            ("rotation_degrees", self.rotation_degrees),
            ("scale", self.scale),
            ("shift", self.shift),
            ("warp", self.warp),
        ];
        for (name, value) in fields {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::argument(
                    op,
                    format!("augment {name} must be finite and at least 0, not {value}"),
                ));
            }
        }
        if self.scale >= 1.0 {
            return Err(Error::argument(
                op,
                format!(
                    "augment scale must be below 1 (the zoom is 1 ± scale), not {}",
                    self.scale
                ),
            ));
        }
        Ok(())
    }
}

/// One affine map: the output pixel p shows the face at
///
///   q = c + F · R(-θ) · (p - c - t) / s,
///
/// the inverse of p = c + t + s · R(θ) · F · (q - c): mirror (F = diag(-1, 1) when `flip`) about
/// the centre, rotate by θ, zoom by s, then shift by t. Mapping each output pixel back to the face
/// (not the face forward) leaves no holes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub rotation_degrees: f64,
    /// Zoom factor s (1 keeps the size; above 1 enlarges).
    pub scale: f64,
    /// t in pixels.
    pub shift_x: f64,
    pub shift_y: f64,
    pub flip: bool,
}

impl Affine {
    /// The map that changes nothing.
    pub const IDENTITY: Affine = Affine {
        rotation_degrees: 0.0,
        scale: 1.0,
        shift_x: 0.0,
        shift_y: 0.0,
        flip: false,
    };

    /// A random map within `cfg`'s ranges. Always draws five uniforms, whatever `cfg` says, so
    /// the draws that follow do not shift when a range is set to 0.
    pub fn sample(cfg: &Augment, rng: &mut Rng) -> Affine {
        let mut symmetric = |range: f64| (2.0 * rng.uniform() - 1.0) * range;
        let size = FACE_SIZE as f64;
        let rotation_degrees = symmetric(cfg.rotation_degrees);
        let scale = 1.0 + symmetric(cfg.scale);
        let shift_x = symmetric(cfg.shift * size);
        let shift_y = symmetric(cfg.shift * size);
        let flip = rng.uniform() < 0.5 && cfg.flip;
        Affine {
            rotation_degrees,
            scale,
            shift_x,
            shift_y,
            flip,
        }
    }

    /// The map from an output point p to the point q of the face it shows (see [`Affine`]).
    /// The sine and cosine of θ are computed here, once: per point they would cost more than
    /// the rest of the map, at every pixel of every face.
    pub fn source_map(&self) -> impl Fn(f64, f64) -> (f64, f64) {
        let c = (FACE_SIZE as f64 - 1.0) / 2.0;
        let (sin, cos) = self.rotation_degrees.to_radians().sin_cos();
        let Affine {
            scale,
            shift_x,
            shift_y,
            flip,
            ..
        } = *self;
        move |x, y| {
            // u = (p - c - t) / s, then v = R(-θ) u, with R(-θ) = [[cos, sin], [-sin, cos]].
            let ux = (x - c - shift_x) / scale;
            let uy = (y - c - shift_y) / scale;
            let vx = cos * ux + sin * uy;
            let vy = -sin * ux + cos * uy;
            let vx = if flip { -vx } else { vx };
            (c + vx, c + vy)
        }
    }
}

/// A smooth displacement field D over the face, in pixels: `dx[y * FACE_SIZE + x]` and `dy[..]`.
///
/// It is drawn at a `grid` x `grid` lattice of control points spanning the image (point (i, j) at
/// x = j·(S-1)/(g-1), y = i·(S-1)/(g-1)), each interior point moved by N(0, (warp·S)²) along each
/// axis, and interpolated to every pixel by Catmull-Rom splines, one pass along x and one along y:
///
///   D(x) = Σ_{k=-1..2} w_k(f) · d[i + k],  u = x·(g-1)/(S-1),  i = ⌊u⌋,  f = u - i,
///   w_{-1} = (-f³ + 2f² - f)/2,  w_0 = (3f³ - 5f² + 2)/2,  w_1 = (-3f³ + 4f² + f)/2,
///   w_2 = (f³ - f²)/2,
///
/// with lattice indices clamped to the lattice. Catmull-Rom passes through the control values and
/// has a continuous slope, so the warp has no creases along the lattice lines that bilinear
/// interpolation would leave.
///
/// The border control points stay put (as in DeepFaceLab): D is then 0 on the image's edge, so the
/// warp bends the face inside the frame and never drags in smeared edge pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Displacement {
    pub dx: Vec<f32>,
    pub dy: Vec<f32>,
}

impl Displacement {
    /// No displacement anywhere.
    pub fn zero() -> Displacement {
        let pixels = FACE_SIZE * FACE_SIZE;
        Displacement {
            dx: vec![0.0; pixels],
            dy: vec![0.0; pixels],
        }
    }

    /// A random field as `cfg` says (see [`Displacement`]). Draws 2·(grid-2)² normals, none when
    /// `warp` is 0 or `grid` below 3.
    pub fn sample(cfg: &Augment, rng: &mut Rng) -> Displacement {
        let g = cfg.grid;
        if cfg.warp == 0.0 || g < 3 {
            return Displacement::zero();
        }
        let std = cfg.warp * FACE_SIZE as f64;
        let mut lattice_x = vec![0.0f64; g * g];
        let mut lattice_y = vec![0.0f64; g * g];
        for i in 1..g - 1 {
            for j in 1..g - 1 {
                lattice_x[i * g + j] = std * rng.normal();
                lattice_y[i * g + j] = std * rng.normal();
            }
        }
        Displacement {
            dx: interpolate_lattice(&lattice_x, g),
            dy: interpolate_lattice(&lattice_y, g),
        }
    }
}

/// Catmull-Rom weights and clamped lattice indices for each pixel position along one axis.
fn spline_taps(g: usize) -> Vec<[(usize, f64); 4]> {
    let last = g - 1;
    (0..FACE_SIZE)
        .map(|x| {
            let u = x as f64 * last as f64 / (FACE_SIZE - 1) as f64;
            let i = (u.floor() as usize).min(last - 1);
            let f = u - i as f64;
            let (f2, f3) = (f * f, f * f * f);
            let weights = [
                (-f3 + 2.0 * f2 - f) / 2.0,
                (3.0 * f3 - 5.0 * f2 + 2.0) / 2.0,
                (-3.0 * f3 + 4.0 * f2 + f) / 2.0,
                (f3 - f2) / 2.0,
            ];
            let mut taps = [(0, 0.0); 4];
            for (k, tap) in taps.iter_mut().enumerate() {
                let index = (i + k).saturating_sub(1).min(last);
                *tap = (index, weights[k]);
            }
            taps
        })
        .collect()
}

/// A g x g lattice of values interpolated to FACE_SIZE² pixels (see [`Displacement`]).
fn interpolate_lattice(lattice: &[f64], g: usize) -> Vec<f32> {
    let taps = spline_taps(g);
    // Along x first: each lattice row becomes a row of FACE_SIZE values.
    let mut rows = vec![0.0f64; g * FACE_SIZE];
    for i in 0..g {
        for (x, tap) in taps.iter().enumerate() {
            rows[i * FACE_SIZE + x] = tap.iter().map(|&(j, w)| w * lattice[i * g + j]).sum();
        }
    }
    // Then along y, between those rows.
    let mut field = vec![0.0f32; FACE_SIZE * FACE_SIZE];
    for (y, tap) in taps.iter().enumerate() {
        for x in 0..FACE_SIZE {
            let value: f64 = tap.iter().map(|&(i, w)| w * rows[i * FACE_SIZE + x]).sum();
            field[y * FACE_SIZE + x] = value as f32;
        }
    }
    field
}

/// Resamples `face`: output pixel p shows the face at `affine`'s source of p + D(p) (D = 0 when
/// `displacement` is None), read by bilinear interpolation with coordinates clamped to the edge.
///
/// So the warped image equals the unwarped one read at p + D(p), computed in one resampling:
/// warping the already transformed face would blur the input twice.
pub fn resample(
    face: &[f32],
    affine: &Affine,
    displacement: Option<&Displacement>,
) -> Result<Vec<f32>> {
    check_face("resample", face)?;
    let plane = FACE_SIZE * FACE_SIZE;
    let mut out = vec![0.0f32; FACE_LEN];
    let source = affine.source_map();
    for y in 0..FACE_SIZE {
        for x in 0..FACE_SIZE {
            let pixel = y * FACE_SIZE + x;
            let (mut px, mut py) = (x as f64, y as f64);
            if let Some(d) = displacement {
                px += f64::from(d.dx[pixel]);
                py += f64::from(d.dy[pixel]);
            }
            let (qx, qy) = source(px, py);
            let taps = bilinear_taps(qx, qy);
            for c in 0..3 {
                let channel = &face[c * plane..(c + 1) * plane];
                out[c * plane + pixel] = taps.iter().map(|&(i, w)| w * channel[i]).sum();
            }
        }
    }
    Ok(out)
}

/// Bilinear interpolation at (x, y), clamped to the image: the four neighbouring pixels with
/// weights (1-fx)(1-fy), fx(1-fy), (1-fx)fy, fx·fy. The weights are non-negative and sum to 1, so
/// values in [0, 1] stay in [0, 1], and at integer positions only one weight is non-zero.
fn bilinear_taps(x: f64, y: f64) -> [(usize, f32); 4] {
    let last = (FACE_SIZE - 1) as f64;
    let (x, y) = (x.clamp(0.0, last), y.clamp(0.0, last));
    let x0 = (x.floor() as usize).min(FACE_SIZE - 2);
    let y0 = (y.floor() as usize).min(FACE_SIZE - 2);
    let fx = (x - x0 as f64) as f32;
    let fy = (y - y0 as f64) as f32;
    let i = y0 * FACE_SIZE + x0;
    [
        (i, (1.0 - fx) * (1.0 - fy)),
        (i + 1, fx * (1.0 - fy)),
        (i + FACE_SIZE, (1.0 - fx) * fy),
        (i + FACE_SIZE + 1, fx * fy),
    ]
}

fn check_face(op: &'static str, face: &[f32]) -> Result<()> {
    if face.len() != FACE_LEN {
        return Err(Error::shape(
            op,
            format!(
                "a face is 3x{FACE_SIZE}x{FACE_SIZE} = {FACE_LEN} values, not {}",
                face.len()
            ),
        ));
    }
    Ok(())
}

/// One training pair (input, target): target = the face under a random [`Affine`], input = the
/// target warped by a random [`Displacement`]. The autoencoder maps input to target, so it learns
/// to undo the warp. Draws the affine first, then the warp.
pub fn augment_pair(face: &[f32], cfg: &Augment, rng: &mut Rng) -> Result<(Vec<f32>, Vec<f32>)> {
    augment_pair_and_affine(face, cfg, rng).map(|(input, target, _)| (input, target))
}

/// [`augment_pair`] with the affine map it drew, so that anything laid over the face (a map of
/// loss weights) can be moved with the target by [`resample`]. The same draws as
/// [`augment_pair`].
pub fn augment_pair_and_affine(
    face: &[f32],
    cfg: &Augment,
    rng: &mut Rng,
) -> Result<(Vec<f32>, Vec<f32>, Affine)> {
    check_face("augment_pair", face)?;
    cfg.check("augment_pair")?;
    let affine = Affine::sample(cfg, rng);
    let displacement = Displacement::sample(cfg, rng);
    let target = resample(face, &affine, None)?;
    let input = resample(face, &affine, Some(&displacement))?;
    Ok((input, target, affine))
}

/// The face under a random [`Affine`] only, no warp: for training a discriminator or a classifier
/// on faces that look like the decoders' targets.
pub fn affine_only(face: &[f32], cfg: &Augment, rng: &mut Rng) -> Result<Vec<f32>> {
    check_face("affine_only", face)?;
    cfg.check("affine_only")?;
    resample(face, &Affine::sample(cfg, rng), None)
}
