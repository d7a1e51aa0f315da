//! Face images in Labeled Faces in the Wild's layout: `<root>/<Name>/<Name>_NNNN.jpg`, one
//! folder per person, each a 250x250 RGB JPEG with the face centred by LFW's alignment.
//!
//! This module crops the face out of each picture, scales it to [`FACE_SIZE`]², and hands it out
//! as CHW planar f32 in [0, 1] (the layout the engine's conv layers take), split into training
//! and held-out faces by a seeded shuffle so that every run sees the same split.

use std::path::{Path, PathBuf};

use ferrograd_engine::{Rng, Tensor};

use crate::Error;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageFormat, RgbImage};

/// Faces are `FACE_SIZE` x `FACE_SIZE` pixels: big enough to tell two people apart, small enough
/// to train on a CPU.
pub const FACE_SIZE: usize = 100;

/// Values in one face: 3 channels of `FACE_SIZE`² pixels.
pub const FACE_LEN: usize = 3 * FACE_SIZE * FACE_SIZE;

/// A rectangle of pixels: columns `left..left + width`, rows `top..top + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// The tight face box in an aligned 250x250 LFW picture (x 65..185, y 70..190): eyes, nose and
/// mouth with little background, so the models spend their capacity on the face.
pub const LFW_CROP: CropBox = CropBox {
    left: 65,
    top: 70,
    width: 120,
    height: 120,
};

/// Where the eyes lie in an aligned face crop, for the eye multiplier of the reconstruction
/// loss: the box that holds, in 90% of the Bush and Powell training crops, dlib's 12 eye
/// landmarks (x 23..76, y 31..41 at the 5th and 95th percentiles), widened by 3 px around for
/// the rims of glasses. LFW's alignment keeps eyes within a few pixels of one place.
pub const EYE_BOX: CropBox = CropBox {
    left: 20,
    top: 28,
    width: 60,
    height: 16,
};

/// Where the mouth lies, measured the same way from dlib's 20 mouth landmarks (x 31..70,
/// y 67..89), so that open mouths and teeth fall inside.
pub const MOUTH_BOX: CropBox = CropBox {
    left: 30,
    top: 66,
    width: 41,
    height: 25,
};

/// A per-value weight for one face (3 channels of [`FACE_SIZE`]², as the faces): `eye` inside
/// [`EYE_BOX`], `mouth` inside [`MOUTH_BOX`], 1 elsewhere, where `source` maps each pixel (x, y)
/// to the point of the aligned crop it shows (the augmentation's [`crate::augment::Affine`], so
/// that the weights follow the eyes and mouth of a rotated, shifted target; the identity for an
/// unmoved face). Reconstruction losses weighted by it spend the decoders' capacity where a
/// face's identity and expression are read (faceswap's eye and mouth multipliers, there drawn
/// from each face's landmarks).
pub fn feature_weights(eye: f32, mouth: f32, source: impl Fn(f64, f64) -> (f64, f64)) -> Vec<f32> {
    let inside = |b: CropBox, x: f64, y: f64| {
        // Pixel i covers [i − ½, i + ½): the box's pixels left..left + width, as a region.
        let (left, top) = (b.left as f64 - 0.5, b.top as f64 - 0.5);
        (left..left + b.width as f64).contains(&x) && (top..top + b.height as f64).contains(&y)
    };
    let plane: Vec<f32> = (0..FACE_SIZE * FACE_SIZE)
        .map(|i| {
            let (x, y) = source((i % FACE_SIZE) as f64, (i / FACE_SIZE) as f64);
            if inside(EYE_BOX, x, y) {
                eye
            } else if inside(MOUTH_BOX, x, y) {
                mouth
            } else {
                1.0
            }
        })
        .collect();
    plane.repeat(3)
}

/// LFW's pictures are this many pixels square; only they get [`LFW_CROP`].
pub const LFW_SIZE: u32 = 250;

/// Pictures smaller than this on either side are refused: scaled up to 100x100 they would be
/// mostly blur.
pub const MIN_PICTURE_SIZE: u32 = 32;

/// The environment variable that names the faces folder.
pub const FACES_ENV: &str = "FERROGRAD_FACES";

/// Identities named in an "identity not found" error, at most.
const NAMES_SHOWN: usize = 10;

/// The faces folder: `$FERROGRAD_FACES` if set, else `../shared/data/lfw` (relative to the
/// current folder, where a checkout next to the shared data finds it).
pub fn default_faces_dir() -> PathBuf {
    match std::env::var_os(FACES_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("../shared/data/lfw"),
    }
}

/// Reads one picture as a face: CHW planar f32 in [0, 1], `3 * FACE_SIZE * FACE_SIZE` values.
///
/// A 250x250 picture is taken to be an aligned LFW face and cut to [`LFW_CROP`]; any other
/// picture gives its largest centred square. The cut is scaled to 100x100 with the triangle
/// (bilinear) filter: `image` widens it by the shrink factor, so it averages every source pixel
/// (no aliasing, even from a large photo), and unlike Catmull-Rom or Lanczos it has no negative
/// lobes, so it adds no ringing halos at hair and background edges for the models to copy.
pub fn load_face(path: &Path) -> Result<Vec<f32>, Error> {
    let picture = read_picture(path)?.to_rgb8();
    face_from_picture(&picture).map_err(|message| Error::face(path, message))
}

/// Decodes a JPEG or PNG file, refusing anything else and JPEGs that are cut short; the error
/// names the file and says what is wrong with it.
pub fn read_picture(path: &Path) -> Result<DynamicImage, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::face(path, format!("cannot open: {e}")))?;
    let format = match image::guess_format(&bytes) {
        Ok(format @ (ImageFormat::Jpeg | ImageFormat::Png)) => format,
        _ => {
            return Err(Error::face(
                path,
                "not an image: the contents are neither JPEG nor PNG",
            ))
        }
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        return Err(Error::face(
            path,
            "corrupt JPEG: the file is cut short (no end-of-image marker after the image data)",
        ));
    }
    image::load_from_memory_with_format(&bytes, format).map_err(|e| {
        Error::face(
            path,
            format!(
                "corrupt or unsupported image: {}",
                ferrograd_plot::describe_image_error(&e)
            ),
        )
    })
}

/// Whether a JPEG ends: the decoder fills a cut-short file with grey and reports success, so a
/// half-downloaded face would pass as a good one. The last scan (marker FF DA) must be followed
/// by the end-of-image marker FF D9. Neither can occur inside the entropy-coded data (an FF byte
/// there is stuffed as FF 00), and a thumbnail's markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let find_last = |marker: [u8; 2]| bytes.windows(2).rposition(|w| w == marker);
    match (find_last([0xFF, 0xDA]), find_last([0xFF, 0xD9])) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

/// The face in a decoded picture (see [`load_face`]); the error says what is wrong with it.
pub fn face_from_picture(picture: &RgbImage) -> Result<Vec<f32>, String> {
    let (width, height) = picture.dimensions();
    if width < MIN_PICTURE_SIZE || height < MIN_PICTURE_SIZE {
        return Err(format!(
            "too small: {width}x{height} pixels, a face needs at least \
             {MIN_PICTURE_SIZE}x{MIN_PICTURE_SIZE}"
        ));
    }
    let crop = if width == LFW_SIZE && height == LFW_SIZE {
        LFW_CROP
    } else {
        let side = width.min(height);
        CropBox {
            left: (width - side) / 2,
            top: (height - side) / 2,
            width: side,
            height: side,
        }
    };
    Ok(crop_face(picture, crop))
}

/// The pixels of `crop` (which must lie inside `picture`) scaled to `FACE_SIZE`² with the
/// triangle filter (see [`load_face`] for why), as CHW f32 in [0, 1].
pub fn crop_face(picture: &RgbImage, crop: CropBox) -> Vec<f32> {
    let cut = imageops::crop_imm(picture, crop.left, crop.top, crop.width, crop.height);
    let small = imageops::resize(
        &*cut,
        FACE_SIZE as u32,
        FACE_SIZE as u32,
        FilterType::Triangle,
    );
    to_chw(&small)
}

/// Interleaved RGB bytes as CHW planes of f32 in [0, 1] (byte / 255).
fn to_chw(picture: &RgbImage) -> Vec<f32> {
    let plane = (picture.width() * picture.height()) as usize;
    let mut face = vec![0.0f32; 3 * plane];
    for (i, pixel) in picture.pixels().enumerate() {
        for c in 0..3 {
            face[c * plane + i] = f32::from(pixel.0[c]) / 255.0;
        }
    }
    face
}

/// How [`load_identity`] picks and splits an identity's pictures.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Identities with fewer pictures than this are refused: too few to learn a face from.
    pub min_images: usize,
    /// The share of pictures kept out of training, to measure how well a model generalises.
    pub held_out_fraction: f64,
    /// Seeds the shuffle that picks the held-out pictures (and the `limit` subset).
    pub seed: u64,
    /// Skip unreadable pictures (with a warning) instead of failing.
    pub skip_bad: bool,
    /// Use at most this many pictures, a seeded random subset, for quick runs.
    pub limit: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            min_images: 20,
            held_out_fraction: 0.1,
            seed: 0,
            skip_bad: false,
            limit: None,
        }
    }
}

/// One person's faces, each CHW f32 in [0, 1] of length `3 * FACE_SIZE * FACE_SIZE`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    /// Faces to train on, in file-name order.
    pub train: Vec<Vec<f32>>,
    /// Faces never trained on (at least one), in file-name order.
    pub held_out: Vec<Vec<f32>>,
    /// Pictures that could not be read and were skipped (only with `skip_bad`).
    pub skipped: Vec<Error>,
}

/// Loads the faces of `<root>/<name>/` and splits them into training and held-out faces.
///
/// The pictures are the folder's `*.jpg`, `*.jpeg` and `*.png` files sorted by name. A seeded
/// shuffle orders them; `limit` keeps a prefix of that order, and the held-out faces are the
/// first `max(1, round(fraction · n))` of what remains (never all of them). So the split depends
/// only on the files and the seed, and a `limit`ed run holds out a subset of what a full run
/// holds out: a quick run never trains on a full run's held-out faces.
pub fn load_identity(root: &Path, name: &str, opts: &LoadOptions) -> Result<Identity, Error> {
    check_root(root)?;
    let folder = root.join(name);
    // One plain folder name: "../x" or "a/b" would reach outside the faces folder.
    let plain = matches!(
        Path::new(name).components().collect::<Vec<_>>()[..],
        [std::path::Component::Normal(_)]
    );
    if !plain || !folder.is_dir() {
        return Err(Error::face(&folder, missing_identity_message(root, name)));
    }
    if !(0.0..1.0).contains(&opts.held_out_fraction) {
        return Err(Error::face(
            &folder,
            format!(
                "the held-out fraction must be in [0, 1), not {}",
                opts.held_out_fraction
            ),
        ));
    }
    if opts.limit.is_some_and(|limit| limit < 2) {
        return Err(Error::face(
            &folder,
            "a limit below 2 leaves no face for training or none held out",
        ));
    }
    let files = image_files(&folder)?;
    // Training and held-out faces each need one picture at least.
    let needed = opts.min_images.max(2);
    if files.len() < needed {
        return Err(Error::face(
            &folder,
            format!(
                "found {} images (*.jpg, *.jpeg, *.png), need at least {needed}",
                files.len()
            ),
        ));
    }

    let mut order: Vec<usize> = (0..files.len()).collect();
    Rng::new(opts.seed).shuffle(&mut order);
    if let Some(limit) = opts.limit {
        order.truncate(limit);
    }
    let chosen: Vec<&Path> = order.iter().map(|&i| files[i].as_path()).collect();

    let mut faces = Vec::with_capacity(chosen.len());
    let mut skipped = Vec::new();
    for (index, decoded) in order.iter().zip(decode_all(&chosen)) {
        match decoded {
            Ok(face) => faces.push((*index, face)),
            Err(e) if opts.skip_bad => {
                eprintln!("warning: skipping {e}");
                skipped.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    // Skipping may leave too few; with a limit the caller asked for few, so only 2 are needed.
    let needed = if opts.limit.is_some() { 2 } else { needed };
    if faces.len() < needed {
        return Err(Error::face(
            &folder,
            format!(
                "only {} of {} images could be read ({} skipped), need at least {needed}",
                faces.len(),
                chosen.len(),
                skipped.len()
            ),
        ));
    }

    let held = held_out_count(faces.len(), opts.held_out_fraction);
    let mut train = faces.split_off(held);
    let mut held_out = faces;
    // Back to file-name order, so that index i names the same picture in every run.
    train.sort_by_key(|(index, _)| *index);
    held_out.sort_by_key(|(index, _)| *index);
    Ok(Identity {
        name: name.to_string(),
        train: train.into_iter().map(|(_, face)| face).collect(),
        held_out: held_out.into_iter().map(|(_, face)| face).collect(),
        skipped,
    })
}

/// How many of `n ≥ 2` faces to hold out: round(fraction · n), but at least 1 and at most n - 1.
fn held_out_count(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64).round() as usize).clamp(1, n - 1)
}

/// Decodes every file, on all cores: each thread takes every k-th file. Results keep the order
/// of `paths`.
fn decode_all(paths: &[&Path]) -> Vec<Result<Vec<f32>, Error>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    let mut results: Vec<Option<Result<Vec<f32>, Error>>> = vec![None; paths.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..paths.len())
                        .step_by(threads)
                        .map(|i| (i, load_face(paths[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            // A decoder panic is a bug in `image`, not bad input; pass it on as it is.
            let done = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, result) in done {
                results[i] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|result| result.expect("every index is decoded by exactly one thread"))
        .collect()
}

/// The identities under `root` with their picture counts, sorted by name.
pub fn list_identities(root: &Path) -> Result<Vec<(String, usize)>, Error> {
    check_root(root)?;
    let entries =
        std::fs::read_dir(root).map_err(|e| Error::face(root, format!("cannot list: {e}")))?;
    let mut identities = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::face(root, format!("cannot list: {e}")))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        identities.push((name, image_files(&path)?.len()));
    }
    identities.sort();
    Ok(identities)
}

/// Refuses a faces folder that is not there, saying how to get one.
fn check_root(root: &Path) -> Result<(), Error> {
    if root.is_dir() {
        return Ok(());
    }
    let what = if root.exists() {
        "is not a folder"
    } else {
        "no such folder"
    };
    Err(Error::face(
        root,
        format!(
            "{what}; name the faces folder with --faces or the {FACES_ENV} environment \
             variable. It must be in Labeled Faces in the Wild's layout, one folder per person: \
             <folder>/<Name>/<Name>_0001.jpg (a full LFW download, lfw-deepfunneled, works)"
        ),
    ))
}

/// "no identity X here; there are: A (12 images), B (3 images), … (and N more)".
fn missing_identity_message(root: &Path, name: &str) -> String {
    let known = match list_identities(root) {
        Ok(known) => known,
        Err(e) => {
            return format!("no identity {name:?} here, and the folder cannot be listed: {e}")
        }
    };
    if known.is_empty() {
        return format!("no identity {name:?} here: the folder holds no identity folders");
    }
    let mut shown: Vec<String> = known
        .iter()
        .take(NAMES_SHOWN)
        .map(|(name, count)| format!("{name} ({count} images)"))
        .collect();
    if known.len() > NAMES_SHOWN {
        shown.push(format!("… (and {} more)", known.len() - NAMES_SHOWN));
    }
    format!(
        "no identity {name:?} here; there are {}: {}",
        known.len(),
        shown.join(", ")
    )
}

/// The `*.jpg`, `*.jpeg` and `*.png` files (any case) directly in `folder`, sorted by name.
pub fn image_files(folder: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| Error::face(folder, format!("cannot list: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::face(folder, format!("cannot list: {e}")))?
            .path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Stacks faces into one [N, 3, FACE_SIZE, FACE_SIZE] f32 tensor, the models' input.
pub fn batch_tensor(faces: &[&[f32]]) -> ferrograd_engine::Result<Tensor> {
    if faces.is_empty() {
        return Err(ferrograd_engine::Error::argument(
            "batch_tensor",
            "no faces to stack",
        ));
    }
    let mut values = Vec::with_capacity(faces.len() * FACE_LEN);
    for (i, face) in faces.iter().enumerate() {
        if face.len() != FACE_LEN {
            return Err(ferrograd_engine::Error::shape(
                "batch_tensor",
                format!(
                    "face {i} has {} values, a 3x{FACE_SIZE}x{FACE_SIZE} face has {FACE_LEN}",
                    face.len()
                ),
            ));
        }
        values.extend_from_slice(face);
    }
    Tensor::from_vec(values, &[faces.len(), 3, FACE_SIZE, FACE_SIZE])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_count_keeps_both_sides_non_empty() {
        assert_eq!(held_out_count(2, 0.0), 1);
        assert_eq!(held_out_count(2, 0.9), 1);
        assert_eq!(held_out_count(530, 0.1), 53);
        assert_eq!(held_out_count(10, 0.99), 9);
    }

    #[test]
    fn small_pictures_are_refused_and_others_centre_cropped() {
        let tiny = RgbImage::new(31, 40);
        let message = face_from_picture(&tiny).unwrap_err();
        assert!(
            message.contains("too small") && message.contains("31x40"),
            "{message}"
        );
        let ok = RgbImage::new(32, 32);
        assert_eq!(face_from_picture(&ok).unwrap().len(), FACE_LEN);
    }
}
