//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 greyscale 28x28 pictures of clothes in
//! 10 classes, split 60,000 for training and 10,000 for testing. It has MNIST's format and size,
//! but is hard enough that a model's quality still shows.
//!
//! This module finds the four files, loads them into [`Split`]s of f32 pixels in [0, 1], checks
//! that they are what they claim to be, and deals out shuffled mini-batches as engine tensors.

use super::{idx::read_idx, Error};
use ferrograd_engine::{Rng, Tensor};
use rayon::prelude::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The ten classes, indexed by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Images are `SIDE` x `SIDE` pixels.
const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// The four files, by their names without `.gz`.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const FILE_NAMES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// The environment variable that names a data folder.
const ENV_VAR: &str = "FASHION_MNIST_DIR";
/// Where Debian's package `dataset-fashion-mnist` puts the files.
const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The last resort, relative to the current folder.
const LOCAL_DIR: &str = "./data/fashion-mnist";
const REPOSITORY: &str = "https://github.com/zalandoresearch/fashion-mnist";

/// One split: `len` images of 28x28, row-major, as f32 in [0, 1] (byte / 255), and their labels 0..10.
///
/// Image `i` is `images[i * 784..(i + 1) * 784]`. The fields are public for reading; a `Split`
/// built by hand must keep `images.len() == 784 * len` and `labels.len() == len`.
#[derive(Debug, Clone)]
pub struct Split {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub len: usize,
}

/// Both splits of the data set, and the folder they were loaded from.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    pub train: Split,
    pub test: Split,
    pub dir: PathBuf,
}

/// A folder to look in, and why it is on the list (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    dir: PathBuf,
    source: &'static str,
}

/// The paths of the four files in a data folder.
struct Files {
    train_images: PathBuf,
    train_labels: PathBuf,
    test_images: PathBuf,
    test_labels: PathBuf,
}

impl FashionMnist {
    /// Where the data is looked for, in order: `explicit` (e.g. a --data flag), then
    /// $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist (Debian's package
    /// dataset-fashion-mnist), then ./data/fashion-mnist. The first folder that holds all four
    /// files wins. If none does, the error lists every place it looked (and, for each, what was
    /// missing) and says how to get the data: `sudo apt-get install dataset-fashion-mnist`, or
    /// download the four files from the Fashion-MNIST repository into a folder and pass --data DIR.
    ///
    /// Only the presence of the files is checked here; [`FashionMnist::load_from`] checks their
    /// contents.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
        locate_in(&candidates(explicit, std::env::var_os(ENV_VAR)))
    }

    /// [`FashionMnist::locate`]s the data, then loads it.
    pub fn load(explicit: Option<&Path>) -> Result<FashionMnist, Error> {
        FashionMnist::load_from(&FashionMnist::locate(explicit)?)
    }

    /// Loads from exactly this folder (no search).
    ///
    /// Each file may be plain or gzip-compressed. The two splits are read in parallel.
    pub fn load_from(dir: &Path) -> Result<FashionMnist, Error> {
        let files = find_files(dir).map_err(|message| Error::data(dir, message))?;
        let (train, test) = rayon::join(
            || load_split(&files.train_images, &files.train_labels),
            || load_split(&files.test_images, &files.test_labels),
        );
        Ok(FashionMnist {
            train: train?,
            test: test?,
            dir: dir.to_path_buf(),
        })
    }
}

/// The folders [`FashionMnist::locate`] tries, in order. `env` is the value of
/// $FASHION_MNIST_DIR, passed in so that tests need not change the process's environment.
fn candidates(explicit: Option<&Path>, env: Option<OsString>) -> Vec<Candidate> {
    // A folder the user names is the only place looked: a mistyped --data must not quietly
    // load whatever copy happens to be installed elsewhere.
    if let Some(dir) = explicit {
        return vec![Candidate {
            dir: dir.to_path_buf(),
            source: "given explicitly, e.g. with --data",
        }];
    }
    let mut list = Vec::new();
    if let Some(dir) = env.filter(|value| !value.is_empty()) {
        list.push(Candidate {
            dir: PathBuf::from(dir),
            source: "from $FASHION_MNIST_DIR",
        });
    }
    list.push(Candidate {
        dir: PathBuf::from(DEBIAN_DIR),
        source: "where Debian's package dataset-fashion-mnist installs it",
    });
    list.push(Candidate {
        dir: PathBuf::from(LOCAL_DIR),
        source: "relative to the current folder",
    });
    list
}

/// The first of `candidates` that holds all four files; otherwise an error saying what is wrong
/// with each of them and how to get the data.
fn locate_in(candidates: &[Candidate]) -> Result<PathBuf, Error> {
    let mut report = String::from("Fashion-MNIST was not found. Looked in, in order:\n");
    for candidate in candidates {
        match find_files(&candidate.dir) {
            Ok(_) => return Ok(candidate.dir.clone()),
            Err(problem) => report.push_str(&format!(
                "  {} ({}): {problem}\n",
                candidate.dir.display(),
                candidate.source
            )),
        }
    }
    let gz_names: Vec<String> = FILE_NAMES.iter().map(|name| format!("{name}.gz")).collect();
    report.push_str(&format!(
        "To get the data, either\n  \
         - install Debian's package: sudo apt-get install dataset-fashion-mnist\n    \
         (it puts the files in {DEBIAN_DIR}, where they are found without any flag), or\n  \
         - download {} from {REPOSITORY} (folder data/fashion) into a folder DIR,\n    \
         then pass --data DIR (or set {ENV_VAR}=DIR).",
        gz_names.join(", ")
    ));
    Err(Error::Data {
        path: None,
        message: report,
    })
}

/// The four files in `dir`, or what is wrong with `dir` (it does not exist, or lacks some).
fn find_files(dir: &Path) -> Result<Files, String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("does not exist".into()),
        Err(e) => return Err(format!("cannot be read: {e}")),
        Ok(meta) if !meta.is_dir() => return Err("is not a folder".into()),
        Ok(_) => {}
    }
    let found = FILE_NAMES.map(|name| find_file(dir, name));
    let missing: Vec<String> = FILE_NAMES
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| format!("{name}[.gz]"))
        .collect();
    match found {
        [Some(train_images), Some(train_labels), Some(test_images), Some(test_labels)] => {
            Ok(Files {
                train_images,
                train_labels,
                test_images,
                test_labels,
            })
        }
        _ => Err(format!("missing {}", missing.join(", "))),
    }
}

/// `dir/name` if it is a file, else `dir/name.gz` if that is. The unpacked file comes first
/// because whoever unpacked it meant it to be used (and it reads faster).
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|path| path.is_file())
}

/// Reads one split and checks that it is Fashion-MNIST-shaped: images [N, 28, 28], N labels, each
/// below 10.
fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, Error> {
    let (images, labels) = rayon::join(|| read_idx(images_path), || read_idx(labels_path));
    let (images, labels) = (images?, labels?);

    let len = match images.dims[..] {
        [len, SIDE, SIDE] => len,
        _ => {
            return Err(Error::data(
                images_path,
                format!(
                    "expected images of 28x28 pixels, dims [N, 28, 28], found dims {:?}",
                    images.dims
                ),
            ))
        }
    };
    let [label_count] = labels.dims[..] else {
        return Err(Error::data(
            labels_path,
            format!(
                "expected one label per image, dims [N], found dims {:?}",
                labels.dims
            ),
        ));
    };
    if label_count != len {
        return Err(Error::data(
            labels_path,
            format!(
                "holds {label_count} labels, but {} holds {len} images",
                images_path.display()
            ),
        ));
    }
    if let Some(index) = labels
        .data
        .iter()
        .position(|&label| usize::from(label) >= CLASS_NAMES.len())
    {
        return Err(Error::data(
            labels_path,
            format!(
                "label {} at index {index} is not a class: labels must be 0 to 9",
                labels.data[index]
            ),
        ));
    }

    // Dividing (rather than multiplying by 1/255) gives the correctly rounded value of each byte
    // over 255, so 255 becomes exactly 1.0.
    let images = images
        .data
        .par_iter()
        .map(|&byte| f32::from(byte) / 255.0)
        .collect();
    Ok(Split {
        images,
        labels: labels.data,
        len,
    })
}

impl Split {
    /// The first `n` examples (or all, if fewer).
    pub fn subset(&self, n: usize) -> Split {
        let n = n.min(self.len);
        Split {
            images: self.images[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
            len: n,
        }
    }

    /// Images `indices` as a [len, 1, 28, 28] f32 tensor, and their labels.
    ///
    /// The 1 is the channel axis that convolutions expect (greyscale: one channel). An index
    /// not below `self.len` is an error naming it.
    pub fn batch_at(&self, indices: &[usize]) -> Result<(Tensor, Vec<usize>), Error> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len) {
            return Err(Error::Data {
                path: None,
                message: format!(
                    "batch_at: index {bad} is out of range for a split of {} examples",
                    self.len
                ),
            });
        }
        Ok(self.gather(indices))
    }

    /// [`Split::batch_at`] for indices known to be in range.
    fn gather(&self, indices: &[usize]) -> (Tensor, Vec<usize>) {
        let mut images = Vec::with_capacity(indices.len() * PIXELS);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.images[i * PIXELS..(i + 1) * PIXELS]);
            labels.push(usize::from(self.labels[i]));
        }
        let tensor = Tensor::from_vec(images, &[indices.len(), 1, SIDE, SIDE])
            .expect("len * 784 values fill a [len, 1, 28, 28] tensor");
        (tensor, labels)
    }

    /// One epoch of shuffled mini-batches (the order from `rng`; the last batch may be smaller).
    ///
    /// Every example appears exactly once per epoch. The same `rng` state gives the same order,
    /// so a seeded run is repeatable.
    /// A batch size of 0 is an error.
    pub fn batches(&self, batch: usize, rng: &mut Rng) -> Result<Batches<'_>, Error> {
        if batch == 0 {
            return Err(Error::Data {
                path: None,
                message: "batches: the batch size must be at least 1".into(),
            });
        }
        let mut order: Vec<usize> = (0..self.len).collect();
        rng.shuffle(&mut order);
        Ok(Batches {
            split: self,
            order,
            position: 0,
            batch,
        })
    }
}

/// Iterator over (images [B, 1, 28, 28] f32, labels) pairs.
///
/// Made by [`Split::batches`]. Each batch is copied out of the split when it is asked for, so
/// only one batch's worth of extra memory is in use at a time.
pub struct Batches<'a> {
    split: &'a Split,
    /// A permutation of `0..split.len`: the epoch's order.
    order: Vec<usize>,
    /// How much of `order` has been dealt out.
    position: usize,
    batch: usize,
}

impl Batches<'_> {
    /// Number of batches in the epoch (all of them, including those already taken; the
    /// iterator's `len()` counts the ones left).
    pub fn len_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Vec<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.order.len() {
            return None;
        }
        let end = (self.position + self.batch).min(self.order.len());
        let indices = &self.order[self.position..end];
        self.position = end;
        Some(self.split.gather(indices))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.position).div_ceil(self.batch);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}
impl std::iter::FusedIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::super::idx::testing::{gzip, idx_bytes};
    use super::*;
    use std::time::Instant;

    /// Writes an IDX file of `dims` and `data` as `dir/name`, gzip-compressed if `name` ends in .gz.
    fn write_idx(dir: &Path, name: &str, dims: &[u32], data: &[u8]) {
        let bytes = idx_bytes(dims, data);
        let bytes = if name.ends_with(".gz") {
            gzip(&bytes)
        } else {
            bytes
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    /// Image `i`'s pixels are all `i` (so they can be recognised); label `i` is `i % 10`.
    fn write_split(dir: &Path, images: &str, labels: &str, n: usize) {
        let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8; PIXELS]).collect();
        let classes: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(dir, images, &[n as u32, 28, 28], &pixels);
        write_idx(dir, labels, &[n as u32], &classes);
    }

    /// A complete small data set in `dir`: 25 training examples (gzip), 7 test examples (plain).
    fn write_fake_dataset(dir: &Path) {
        write_split(
            dir,
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            25,
        );
        write_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 7);
    }

    fn candidate(dir: &Path) -> Candidate {
        Candidate {
            dir: dir.to_path_buf(),
            source: "test",
        }
    }

    #[test]
    fn loads_a_small_fake_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let data = FashionMnist::load_from(tmp.path()).unwrap();
        assert_eq!(data.dir, tmp.path());
        assert_eq!((data.train.len, data.test.len), (25, 7));
        assert_eq!(data.train.images.len(), 25 * PIXELS);
        assert_eq!(data.test.labels, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(data.train.images[3 * PIXELS], 3.0 / 255.0);
        assert_eq!(data.train.labels[13], 3);
    }

    #[test]
    fn pixels_are_bytes_over_255() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let pixels: Vec<u8> = (0..=255)
            .chain(0..PIXELS as u32 - 256)
            .map(|v| v as u8)
            .collect();
        write_idx(tmp.path(), "t10k-images-idx3-ubyte", &[1, 28, 28], &pixels);
        write_idx(tmp.path(), "t10k-labels-idx1-ubyte", &[1], &[9]);
        let data = FashionMnist::load_from(tmp.path()).unwrap();
        assert_eq!(data.test.images[0], 0.0);
        assert_eq!(data.test.images[255], 1.0);
        assert_eq!(data.test.images[51], 0.2);
    }

    #[test]
    fn plain_files_are_preferred_to_gz() {
        let tmp = tempfile::tempdir().unwrap();
        write_idx(tmp.path(), "x", &[1], &[1]);
        write_idx(tmp.path(), "x.gz", &[1], &[2]);
        write_idx(tmp.path(), "y.gz", &[1], &[3]);
        assert_eq!(find_file(tmp.path(), "x"), Some(tmp.path().join("x")));
        assert_eq!(find_file(tmp.path(), "y"), Some(tmp.path().join("y.gz")));
        assert_eq!(find_file(tmp.path(), "z"), None);
    }

    #[test]
    fn candidates_come_in_order() {
        let list = candidates(None, Some("/env/dir".into()));
        let dirs: Vec<&Path> = list.iter().map(|c| c.dir.as_path()).collect();
        assert_eq!(
            dirs,
            [
                Path::new("/env/dir"),
                Path::new(DEBIAN_DIR),
                Path::new(LOCAL_DIR)
            ]
        );
        // An explicit folder is the only one looked at.
        let explicit = Path::new("/flag/dir");
        let list = candidates(Some(explicit), Some("/env/dir".into()));
        assert_eq!(
            list.iter().map(|c| c.dir.as_path()).collect::<Vec<_>>(),
            [explicit]
        );
    }

    #[test]
    fn locate_in_takes_the_first_complete_folder() {
        let (empty, first, second) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        write_fake_dataset(first.path());
        write_fake_dataset(second.path());
        let list = [
            candidate(&empty.path().join("nope")),
            candidate(empty.path()),
            candidate(first.path()),
            candidate(second.path()),
        ];
        assert_eq!(locate_in(&list).unwrap(), first.path());
    }

    #[test]
    fn missing_data_folder_lists_every_place_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let absent = tmp.path().join("does-not-exist");
        let also_absent = tmp.path().join("neither-does-this");
        let empty = tempfile::tempdir().unwrap();
        let error = locate_in(&[
            candidate(&absent),
            candidate(&also_absent),
            candidate(empty.path()),
        ])
        .unwrap_err();
        assert_eq!(error.path(), None);
        let message = error.to_string();
        for dir in [&absent, &also_absent, &empty.path().to_path_buf()] {
            assert!(message.contains(&dir.display().to_string()), "{message}");
        }
        assert!(message.contains("does not exist"), "{message}");
        assert!(
            message.contains("missing train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]"),
            "{message}"
        );
        assert!(
            message.contains("sudo apt-get install dataset-fashion-mnist"),
            "{message}"
        );
        assert!(message.contains("--data DIR"), "{message}");
        assert!(message.contains(REPOSITORY), "{message}");
    }

    #[test]
    fn a_folder_with_some_files_is_reported_with_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        write_split(
            tmp.path(),
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte",
            3,
        );
        let explicit = candidates(Some(tmp.path()), None).remove(0);
        let message = locate_in(&[explicit]).unwrap_err().to_string();
        let line = message
            .lines()
            .find(|line| line.contains(&tmp.path().display().to_string()))
            .unwrap();
        assert!(line.contains("--data"), "{line}");
        assert!(
            line.ends_with("missing t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"),
            "{line}"
        );

        // Loading from exactly that folder says the same, naming the folder.
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        assert_eq!(error.path(), Some(tmp.path()));
        assert!(error.to_string().contains("missing t10k-images"), "{error}");
    }

    #[test]
    fn a_file_where_a_folder_should_be_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let message = locate_in(&[candidate(&file)]).unwrap_err().to_string();
        assert!(message.contains("is not a folder"), "{message}");
    }

    #[test]
    fn labels_of_10_or_more_are_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        write_idx(
            tmp.path(),
            "t10k-labels-idx1-ubyte",
            &[7],
            &[0, 1, 9, 10, 4, 200, 6],
        );
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        assert_eq!(
            error.path(),
            Some(tmp.path().join("t10k-labels-idx1-ubyte").as_path())
        );
        assert!(error.to_string().contains("label 10 at index 3"), "{error}");
    }

    #[test]
    fn image_and_label_counts_must_match() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        write_idx(tmp.path(), "t10k-labels-idx1-ubyte", &[6], &[0; 6]);
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("t10k-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("holds 6 labels"), "{message}");
        assert!(message.contains("7 images"), "{message}");
    }

    #[test]
    fn images_must_be_28_by_28_and_labels_flat() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        write_idx(
            tmp.path(),
            "t10k-images-idx3-ubyte",
            &[7, 28, 27],
            &[0; 7 * 28 * 27],
        );
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        assert!(error.to_string().contains("[7, 28, 27]"), "{error}");
        assert!(
            error.to_string().contains("t10k-images-idx3-ubyte"),
            "{error}"
        );

        write_fake_dataset(tmp.path());
        write_idx(tmp.path(), "t10k-labels-idx1-ubyte", &[7, 1], &[0; 7]);
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        assert!(
            error.to_string().contains("dims [N], found dims [7, 1]"),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_file_fails_the_load_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let path = tmp.path().join("train-images-idx3-ubyte.gz");
        let packed = std::fs::read(&path).unwrap();
        std::fs::write(&path, &packed[..packed.len() / 2]).unwrap();
        let error = FashionMnist::load_from(tmp.path()).unwrap_err();
        assert_eq!(error.path(), Some(path.as_path()));
    }

    #[test]
    fn subset_takes_the_first_examples() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let train = FashionMnist::load_from(tmp.path()).unwrap().train;
        let first = train.subset(4);
        assert_eq!(first.len, 4);
        assert_eq!(first.labels, train.labels[..4]);
        assert_eq!(first.images, train.images[..4 * PIXELS]);
        assert_eq!(train.subset(1000).len, 25);
        assert_eq!(train.subset(0).images.len(), 0);
    }

    #[test]
    fn batch_at_gathers_the_examples_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let train = FashionMnist::load_from(tmp.path()).unwrap().train;
        let (images, labels) = train.batch_at(&[12, 3, 12]).unwrap();
        assert_eq!(images.shape(), &[3, 1, 28, 28]);
        assert_eq!(labels, vec![2, 3, 2]);
        let values = images.to_vec_f32();
        assert!(values[..PIXELS].iter().all(|&v| v == 12.0 / 255.0));
        assert!(values[PIXELS..2 * PIXELS].iter().all(|&v| v == 3.0 / 255.0));
        let (empty, labels) = train.batch_at(&[]).unwrap();
        assert_eq!((empty.shape(), labels.len()), (&[0, 1, 28, 28][..], 0));
    }

    #[test]
    fn batch_at_rejects_a_bad_index() {
        let split = Split {
            images: vec![0.0; PIXELS],
            labels: vec![0],
            len: 1,
        };
        let error = split.batch_at(&[1]).unwrap_err();
        assert!(
            error.to_string().contains("index 1 is out of range"),
            "{error}"
        );
    }

    #[test]
    fn batches_cover_the_split_once_per_epoch() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake_dataset(tmp.path());
        let train = FashionMnist::load_from(tmp.path()).unwrap().train;
        let mut rng = Rng::new(3);
        let mut batches = train.batches(10, &mut rng).unwrap();
        assert_eq!((batches.len_batches(), batches.len()), (3, 3));
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for (images, labels) in batches.by_ref() {
            sizes.push(images.shape()[0]);
            // Pixels say which example it is.
            let values = images.to_vec_f32();
            for (k, &label) in labels.iter().enumerate() {
                let index = (values[k * PIXELS] * 255.0).round() as usize;
                assert_eq!(label, index % 10);
                seen.push(index);
            }
        }
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!((batches.len_batches(), batches.len()), (3, 0));
        assert!(batches.next().is_none());
        assert_ne!(seen, (0..25).collect::<Vec<_>>(), "not shuffled");
        seen.sort_unstable();
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn batches_of_zero_are_an_error() {
        let split = Split {
            images: vec![],
            labels: vec![],
            len: 0,
        };
        assert!(split.batches(0, &mut Rng::new(0)).is_err());
    }

    /// The labels of one epoch, batch by batch.
    fn epoch_labels(split: &Split, seed: u64) -> Vec<Vec<usize>> {
        split
            .batches(128, &mut Rng::new(seed))
            .unwrap()
            .map(|(_, labels)| labels)
            .collect()
    }

    /// Loads the real data set, where Debian's package has installed it.
    #[test]
    fn real_dataset() {
        let dir = Path::new(DEBIAN_DIR);
        if !dir.is_dir() {
            eprintln!("skipping real_dataset: {DEBIAN_DIR} does not exist");
            return;
        }
        let start = Instant::now();
        let data = FashionMnist::load_from(dir).unwrap();
        eprintln!(
            "real_dataset: loaded Fashion-MNIST from {} in {:.3} s",
            dir.display(),
            start.elapsed().as_secs_f64()
        );
        assert_eq!((data.train.len, data.test.len), (60000, 10000));
        for split in [&data.train, &data.test] {
            assert_eq!(split.images.len(), split.len * PIXELS);
            assert_eq!(split.labels.len(), split.len);
            assert!(split.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
            assert!(split.labels.iter().all(|&label| label < 10));
        }
        // Pixels really span the range, and every class is present in both splits.
        let max = data.train.images.iter().copied().fold(0.0f32, f32::max);
        assert_eq!(max, 1.0);
        for class in 0..10 {
            assert!(data.test.labels.contains(&class));
        }

        let mut batches = data.train.batches(128, &mut Rng::new(0)).unwrap();
        let expected = 60000usize.div_ceil(128);
        assert_eq!((batches.len_batches(), batches.len()), (expected, expected));
        let mut count = 0;
        let mut last_shape = Vec::new();
        for (images, labels) in batches.by_ref() {
            count += 1;
            last_shape = images.shape().to_vec();
            assert_eq!(labels.len(), last_shape[0]);
            if count < expected {
                assert_eq!(images.shape(), &[128, 1, 28, 28]);
            }
        }
        assert_eq!(count, expected);
        assert_eq!(last_shape, [60000 % 128, 1, 28, 28]);

        let same = epoch_labels(&data.train, 0);
        assert_eq!(same, epoch_labels(&data.train, 0));
        assert_ne!(same, epoch_labels(&data.train, 1));
    }
}
