//! Convert: the photograph with its face replaced, which is what a user of a face-swap tool
//! wants, not the 100x100 crop the network sees.
//!
//! For one photograph and a face box:
//! 1. cut the box out and scale it to 100x100 exactly as training did ([`crop_face`]);
//! 2. swap it, D_to(E(crop));
//! 3. match the swap's colours to the original face's (Reinhard et al. 2001: per channel of
//!    CIE L\*a\*b\*, x ↦ (x − μ_swap)·σ_orig/σ_swap + μ_orig, the statistics weighted by the
//!    blend mask so that they are the skin's, not the background's);
//! 4. scale the swap and the blend mask back to the box and blend,
//!    out = m·swap + (1 − m)·photo: where the mask is 0 the photograph is untouched, byte for
//!    byte, and its feathered edge hides the seam.
//!
//! The blend mask is a fixed feathered ellipse over the face in the aligned crop ([`blend_mask`]);
//! the network does not learn one yet.

use std::path::{Path, PathBuf};

use ferrograd_engine::Tensor;
use image::imageops::{self, FilterType};
/// The pictures convert takes and makes (re-exported so that callers need not name `image`).
pub use image::RgbImage;
use image::{ColorType, ImageBuffer, Luma, Rgb};

use crate::faces::{
    batch_tensor, crop_face, image_files, read_picture, CropBox, FACE_LEN, FACE_SIZE, LFW_CROP,
    LFW_SIZE, MIN_PICTURE_SIZE,
};
use crate::model::{FaceSwap, Side};
use crate::Error;

/// The blend mask's ellipse, as fractions of the crop's side: half-width, half-height, and the
/// share of the radius over which it fades from 1 to 0. The aligned crop is tight around eyes,
/// nose and mouth; the ellipse keeps the cheeks and chin and leaves the corners (hair,
/// background) to the photograph.
const MASK_HALF_WIDTH: f64 = 0.42;
const MASK_HALF_HEIGHT: f64 = 0.48;
const MASK_FEATHER: f64 = 0.3;

/// A photograph as read, in RGB, and whether the file was grayscale (and so was converted:
/// swapped faces come out in colour, which a grayscale photo's user should be told).
#[derive(Debug, Clone)]
pub struct Photo {
    pub picture: RgbImage,
    pub grayscale: bool,
}

/// Reads a JPEG or PNG photograph of any size (see [`read_picture`] for what is refused).
pub fn load_photo(path: &Path) -> Result<Photo, Error> {
    let picture = read_picture(path)?;
    let grayscale = matches!(
        picture.color(),
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
    );
    Ok(Photo {
        picture: picture.to_rgb8(),
        grayscale,
    })
}

/// Parses a `--box` value, `LEFT,TOP,WIDTH,HEIGHT` in pixels.
pub fn parse_box(text: &str) -> Result<CropBox, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let numbers = parts
        .iter()
        .map(|p| p.parse::<u32>())
        .collect::<Result<Vec<u32>, _>>();
    match (parts.len(), numbers) {
        (4, Ok(n)) => Ok(CropBox {
            left: n[0],
            top: n[1],
            width: n[2],
            height: n[3],
        }),
        _ => Err(format!(
            "'{text}' is not a box: give LEFT,TOP,WIDTH,HEIGHT as four whole numbers of pixels \
             (LFW's aligned 250x250 photos use 65,70,120,120)"
        )),
    }
}

/// The face box of a photograph: the one given, checked to be square, large enough and inside
/// the picture; or, for an LFW-aligned 250x250 photo, the box training used. Any other photo
/// without a box is refused, since where its face is is unknown.
pub fn face_box(
    path: &Path,
    (width, height): (u32, u32),
    given: Option<CropBox>,
) -> Result<CropBox, Error> {
    let Some(b) = given else {
        if (width, height) == (LFW_SIZE, LFW_SIZE) {
            return Ok(LFW_CROP);
        }
        return Err(Error::face(
            path,
            format!(
                "{width}x{height} is not an LFW-aligned {LFW_SIZE}x{LFW_SIZE} photo, so where its \
                 face is is unknown: give the face's square box with --box LEFT,TOP,SIDE,SIDE in \
                 pixels (eyebrows to chin, ear to ear; LFW's is 65,70,120,120)"
            ),
        ));
    };
    let describe = format!("the box {},{},{},{}", b.left, b.top, b.width, b.height);
    if b.width != b.height {
        return Err(Error::face(
            path,
            format!(
                "{describe} is not square ({}x{}): faces are trained square",
                b.width, b.height
            ),
        ));
    }
    if b.width < MIN_PICTURE_SIZE {
        return Err(Error::face(
            path,
            format!(
                "{describe} is too small: a face needs at least {MIN_PICTURE_SIZE}x{MIN_PICTURE_SIZE} pixels"
            ),
        ));
    }
    let (right, bottom) = (
        u64::from(b.left) + u64::from(b.width),
        u64::from(b.top) + u64::from(b.height),
    );
    if right > u64::from(width) || bottom > u64::from(height) {
        return Err(Error::face(
            path,
            format!(
                "{describe} reaches past the {width}x{height} photo (to column {right}, row {bottom})"
            ),
        ));
    }
    Ok(b)
}

/// The blend mask on the 100x100 crop, row-major: 1 inside an ellipse over the face, 0 outside
/// it (and on the crop's border rows and columns, so the pasted box leaves no seam), with a
/// raised-cosine fade between: with r the pixel centre's elliptical radius and f the feather,
/// m = 1 for r ≤ 1 − f, ½(1 + cos(π(r − 1 + f)/f)) for 1 − f < r < 1, and 0 for r ≥ 1.
pub fn blend_mask() -> Vec<f32> {
    let side = FACE_SIZE as f64;
    let centre = side / 2.0;
    let (half_w, half_h) = (MASK_HALF_WIDTH * side, MASK_HALF_HEIGHT * side);
    let mut mask = Vec::with_capacity(FACE_SIZE * FACE_SIZE);
    for y in 0..FACE_SIZE {
        for x in 0..FACE_SIZE {
            let dx = (x as f64 + 0.5 - centre) / half_w;
            let dy = (y as f64 + 0.5 - centre) / half_h;
            let r = (dx * dx + dy * dy).sqrt();
            let m = if r <= 1.0 - MASK_FEATHER {
                1.0
            } else if r >= 1.0 {
                0.0
            } else {
                0.5 * (1.0 + (std::f64::consts::PI * (r - 1.0 + MASK_FEATHER) / MASK_FEATHER).cos())
            };
            mask.push(m as f32);
        }
    }
    mask
}

/// sRGB in [0, 1] → linear light; extended to values outside as an odd function, so that a
/// colour pushed out of gamut by colour matching comes back through [`lab_to_srgb`] unchanged.
fn srgb_to_linear(c: f64) -> f64 {
    let a = c.abs();
    let linear = if a <= 0.04045 {
        a / 12.92
    } else {
        ((a + 0.055) / 1.055).powf(2.4)
    };
    linear.copysign(c)
}

fn linear_to_srgb(c: f64) -> f64 {
    let a = c.abs();
    let srgb = if a <= 0.0031308 {
        12.92 * a
    } else {
        1.055 * a.powf(1.0 / 2.4) - 0.055
    };
    srgb.copysign(c)
}

/// Linear sRGB → CIE XYZ (IEC 61966-2-1, D65).
const RGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175_0],
    [0.019_333_9, 0.119_192_0, 0.950_304_1],
];

/// The exact inverse of [`RGB_TO_XYZ`] (not the standard's rounded one), so that colours go to
/// L\*a\*b\* and back unchanged to f64 rounding.
static XYZ_TO_RGB: std::sync::LazyLock<[[f64; 3]; 3]> =
    std::sync::LazyLock::new(|| invert(&RGB_TO_XYZ));

fn apply(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    m.map(|row| row[0] * v[0] + row[1] * v[1] + row[2] * v[2])
}

/// The inverse of an invertible 3x3 matrix: the adjugate over the determinant.
fn invert(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    [0, 1, 2].map(|r| [0, 1, 2].map(|c| cofactor(c, r) / det))
}

/// D65 white point, XYZ.
const WHITE_XYZ: [f64; 3] = [0.950_47, 1.0, 1.088_83];
/// δ = 6/29 of the L\*a\*b\* definition: below δ³ the cube root is replaced by a line.
const LAB_DELTA: f64 = 6.0 / 29.0;

fn lab_f(t: f64) -> f64 {
    if t > LAB_DELTA.powi(3) {
        t.cbrt()
    } else {
        t / (3.0 * LAB_DELTA * LAB_DELTA) + 4.0 / 29.0
    }
}

fn lab_f_inverse(t: f64) -> f64 {
    if t > LAB_DELTA {
        t.powi(3)
    } else {
        3.0 * LAB_DELTA * LAB_DELTA * (t - 4.0 / 29.0)
    }
}

/// CIE L\*a\*b\* (D65) of an sRGB colour: L\* in [0, 100], a perceptual space in which a mean
/// and spread of skin colour mean what they say.
pub fn srgb_to_lab(rgb: [f64; 3]) -> [f64; 3] {
    let xyz = apply(&RGB_TO_XYZ, rgb.map(srgb_to_linear));
    let [fx, fy, fz] = [0, 1, 2].map(|i| lab_f(xyz[i] / WHITE_XYZ[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// The inverse of [`srgb_to_lab`] (results may lie outside [0, 1] for colours out of gamut).
pub fn lab_to_srgb([l, a, b]: [f64; 3]) -> [f64; 3] {
    let fy = (l + 16.0) / 116.0;
    let f = [fy + a / 500.0, fy, fy - b / 200.0];
    let xyz = [0, 1, 2].map(|i| lab_f_inverse(f[i]) * WHITE_XYZ[i]);
    apply(&XYZ_TO_RGB, xyz).map(linear_to_srgb)
}

/// The L\*a\*b\* colours of a CHW face, one per pixel.
fn face_lab(face: &[f32]) -> Vec<[f64; 3]> {
    let plane = face.len() / 3;
    (0..plane)
        .map(|i| srgb_to_lab([0, 1, 2].map(|c| f64::from(face[c * plane + i]))))
        .collect()
}

/// Mean and standard deviation of each L\*a\*b\* channel of a CHW face, each pixel weighted by
/// `weights` (one per pixel, not all zero).
pub fn lab_statistics(face: &[f32], weights: &[f32]) -> [(f64, f64); 3] {
    weighted_statistics(&face_lab(face), weights)
}

fn weighted_statistics(lab: &[[f64; 3]], weights: &[f32]) -> [(f64, f64); 3] {
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    [0, 1, 2].map(|c| {
        let mean = lab
            .iter()
            .zip(weights)
            .map(|(p, &w)| f64::from(w) * p[c])
            .sum::<f64>()
            / total;
        let var = lab
            .iter()
            .zip(weights)
            .map(|(p, &w)| f64::from(w) * (p[c] - mean).powi(2))
            .sum::<f64>()
            / total;
        (mean, var.sqrt())
    })
}

/// Recolours the CHW face `face` so that its L\*a\*b\* statistics under `weights` become those
/// of `reference` (both 3xHxW, one weight per pixel): per channel,
/// x ↦ (x − μ_face)·σ_ref/σ_face + μ_ref. A channel with no spread in `face` is only shifted.
/// The result is not clamped to [0, 1] (so its statistics are exactly the reference's); the
/// caller clamps when it makes pixels.
pub fn match_colour(face: &[f32], reference: &[f32], weights: &[f32]) -> Result<Vec<f32>, Error> {
    check_face_and_mask("match_colour", face, weights)?;
    check_face_and_mask("match_colour", reference, weights)?;
    if !weights.iter().any(|&w| w > 0.0) || weights.iter().any(|w| w.is_nan() || *w < 0.0) {
        return Err(Error::Invalid {
            message: "match_colour: the weights must be non-negative and not all zero".into(),
        });
    }
    let lab = face_lab(face);
    let from = weighted_statistics(&lab, weights);
    let to = lab_statistics(reference, weights);
    let plane = lab.len();
    let mut out = vec![0.0f32; face.len()];
    for (i, pixel) in lab.iter().enumerate() {
        let matched = [0, 1, 2].map(|c| {
            let (mean, std) = from[c];
            let scale = if std > 1e-9 { to[c].1 / std } else { 1.0 };
            (pixel[c] - mean) * scale + to[c].0
        });
        for (c, value) in lab_to_srgb(matched).into_iter().enumerate() {
            out[c * plane + i] = value as f32;
        }
    }
    Ok(out)
}

/// Pastes a 100x100 CHW `face` into `picture` over `face_box`, blended by the 100x100 `mask`:
/// both are scaled to the box with the triangle filter (no negative lobes, so the mask stays in
/// [0, 1] and is exactly 0 wherever its 100x100 neighbourhood is), then
/// out = round(255·(m·face + (1 − m)·photo)) per channel. Pixels outside the box, and inside
/// where the scaled mask is 0, keep their bytes.
pub fn paste_face(
    picture: &RgbImage,
    face_box: CropBox,
    face: &[f32],
    mask: &[f32],
) -> Result<RgbImage, Error> {
    check_face_and_mask("paste_face", face, mask)?;
    let inside = u64::from(face_box.left) + u64::from(face_box.width) <= u64::from(picture.width())
        && u64::from(face_box.top) + u64::from(face_box.height) <= u64::from(picture.height());
    if !inside {
        return Err(Error::Invalid {
            message: format!(
                "paste_face: the box {face_box:?} reaches past the {}x{} picture",
                picture.width(),
                picture.height()
            ),
        });
    }
    let plane = FACE_SIZE * FACE_SIZE;
    let side = FACE_SIZE as u32;
    let face_image: ImageBuffer<Rgb<f32>, Vec<f32>> = ImageBuffer::from_fn(side, side, |x, y| {
        let i = (y * side + x) as usize;
        Rgb([face[i], face[plane + i], face[2 * plane + i]])
    });
    let (w, h) = (face_box.width, face_box.height);
    let face_scaled = imageops::resize(&face_image, w, h, FilterType::Triangle);
    let mask_scaled = scale_mask(mask, w, h);
    let mut out = picture.clone();
    for y in 0..h {
        for x in 0..w {
            let m = mask_scaled[(y * w + x) as usize];
            if m == 0.0 {
                continue;
            }
            let pixel = out.get_pixel_mut(face_box.left + x, face_box.top + y);
            let swapped = face_scaled.get_pixel(x, y).0;
            for (byte, face_value) in pixel.0.iter_mut().zip(swapped) {
                let photo = f32::from(*byte) / 255.0;
                let value = m * face_value.clamp(0.0, 1.0) + (1.0 - m) * photo;
                *byte = (value * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// A 3x100x100 face and a 100x100 mask, or an error naming `op`.
fn check_face_and_mask(op: &str, face: &[f32], mask: &[f32]) -> Result<(), Error> {
    if face.len() != FACE_LEN || mask.len() != FACE_SIZE * FACE_SIZE {
        return Err(Error::Invalid {
            message: format!(
                "{op}: a face has {FACE_LEN} values and a mask {} (3x{FACE_SIZE}x{FACE_SIZE} and                  {FACE_SIZE}x{FACE_SIZE}), not {} and {}",
                FACE_SIZE * FACE_SIZE,
                face.len(),
                mask.len()
            ),
        });
    }
    Ok(())
}

/// The 100x100 `mask` scaled to `width` x `height` as [`paste_face`] scales it (row-major, in
/// [0, 1]): where it is 0, the photograph is left alone.
pub fn scale_mask(mask: &[f32], width: u32, height: u32) -> Vec<f32> {
    let side = FACE_SIZE as u32;
    let mask_image: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_fn(side, side, |x, y| Luma([mask[(y * side + x) as usize]]));
    imageops::resize(&mask_image, width, height, FilterType::Triangle)
        .into_raw()
        .into_iter()
        .map(|m| m.clamp(0.0, 1.0))
        .collect()
}

/// What [`convert_photo`] made: the photograph with the face replaced, and the 100x100 faces on
/// the way (the crop, the network's swap, the swap after colour matching).
#[derive(Debug, Clone)]
pub struct Converted {
    pub result: RgbImage,
    pub crop: Vec<f32>,
    pub swapped: Vec<f32>,
    pub matched: Vec<f32>,
}

/// Replaces the face in `face_box` of `picture` by `model`'s swap to `to`, colour-matched to
/// the original face unless `colour_match` is false (see the module's steps).
pub fn convert_photo(
    model: &FaceSwap,
    picture: &RgbImage,
    face_box: CropBox,
    to: Side,
    colour_match: bool,
) -> Result<Converted, Error> {
    let crop = crop_face(picture, face_box);
    let x: Tensor = batch_tensor(&[crop.as_slice()])?;
    let swapped = model.transfer(&x, to)?.to_vec_f32();
    debug_assert_eq!(swapped.len(), FACE_LEN);
    let mask = blend_mask();
    let matched = if colour_match {
        match_colour(&swapped, &crop, &mask)?
    } else {
        swapped.clone()
    };
    let result = paste_face(picture, face_box, &matched, &mask)?;
    Ok(Converted {
        result,
        crop,
        swapped,
        matched,
    })
}

/// The photographs to convert: `input` itself if it is a file, else the folder's `*.jpg`,
/// `*.jpeg` and `*.png` files in name order (frames of a video stay in order).
pub fn list_photos(input: &Path) -> Result<Vec<PathBuf>, Error> {
    if !input.is_dir() {
        if !input.exists() {
            return Err(Error::face(input, "no such file or folder"));
        }
        return Ok(vec![input.to_path_buf()]);
    }
    let photos = image_files(input)?;
    if photos.is_empty() {
        return Err(Error::face(
            input,
            "holds no photographs (*.jpg, *.jpeg or *.png)",
        ));
    }
    Ok(photos)
}

/// Where each photo's conversion is written in the folder `out` (which must exist): its file
/// stem with `.png` (lossless, so that converting again starts from exactly these pixels).
/// Refused: two photos that would be written to one file (`a.jpg` and `a.png`), and an output
/// that is one of the photos, which would be lost.
pub fn output_paths(photos: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, Error> {
    let out_dir =
        std::fs::canonicalize(out).map_err(|e| Error::file(out, format!("cannot open: {e}")))?;
    let inputs: Vec<PathBuf> = photos
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut outputs: Vec<PathBuf> = Vec::with_capacity(photos.len());
    for photo in photos {
        let stem = photo.file_stem().unwrap_or(photo.as_os_str());
        let output = out_dir.join(Path::new(stem).with_extension("png"));
        if let Some(i) = outputs.iter().position(|o| *o == output) {
            return Err(Error::face(
                photo,
                format!(
                    "would be written to {}, as {} is: rename one of them",
                    output.display(),
                    photos[i].display()
                ),
            ));
        }
        if inputs.contains(&output) {
            return Err(Error::file(
                &output,
                "is a photo being converted and would be overwritten: choose another --out",
            ));
        }
        outputs.push(output);
    }
    Ok(outputs)
}
