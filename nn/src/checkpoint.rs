//! Checkpoints: named tensors in safetensors files, written atomically.
//!
//! The files are standard safetensors (an 8-byte little-endian header length, a JSON header,
//! then the raw little-endian values), so PyTorch's `safetensors.torch.load_file` reads them
//! with the tensor names as given here (`encoder.0.weight`, …).
//!
//! Every error names the file, and the tensor when one is at fault, because "shape mismatch"
//! alone is no help when a run has a dozen checkpoints and a hundred tensors.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ferrograd_engine::{DType, Tensor};
use safetensors::{Dtype, SafeTensors};

/// What went wrong with a checkpoint, naming the file (and the tensor, when one is at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file the error is about.
    pub path: PathBuf,
    /// What is wrong with it, as a sentence.
    pub message: String,
}

impl Error {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        Error {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for Error {}

/// A whole number written with digits only: "-1", "+3", "1.5", " 7" and "" are not.
pub fn parse_whole(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A loaded checkpoint: tensors by name, and string metadata.
#[derive(Debug)]
pub struct Checkpoint {
    /// Every tensor of the file, by its name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The file's string metadata (settings, step counts, versions).
    pub metadata: BTreeMap<String, String>,
    /// The file it came from, so that later errors can name it.
    pub path: PathBuf,
}

/// Writes `tensors` (f32 or f64; names must be unique) and `metadata` to `path` in the
/// safetensors format, atomically: to a temporary file in the same folder (`<name>.tmp-<pid>`),
/// flushed and fsync'd, then renamed over `path`, so an interrupted save never leaves a damaged
/// file and the previous checkpoint stays intact until the new one is complete. Creates the
/// parent folder if missing.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), Error> {
    check_unique_names(path, tensors)?;
    let bytes = encode(tensors, metadata);
    write_atomically(path, &bytes)
        .map_err(|e| Error::new(path, format!("cannot write checkpoint: {e}")))
}

/// The safetensors header is a JSON object keyed by name: a second tensor with the same name
/// would silently replace the first, so it is refused before anything is written.
fn check_unique_names(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    match tensors.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        Some((name, _)) => Err(Error::new(
            path,
            format!("tensor `{name}` is given twice; names must be unique"),
        )),
        None => Ok(()),
    }
}

/// The bytes of a safetensors file holding `tensors` and `metadata`, the same bytes for the same
/// values on every run: the header's keys come in a fixed order (the metadata sorted by key,
/// then the tensors in the order of their data), where the `safetensors` crate's own
/// serializer takes the metadata's order from a hash map, which changes from run to run.
/// The layout is the crate's: tensors sorted by dtype (wider first, which keeps each one
/// aligned) and then by name, the header padded with spaces to a multiple of 8 bytes.
fn encode(tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut encoded: Vec<(&str, Dtype, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(name, tensor)| {
            let (dtype, bytes) = little_endian_bytes(tensor);
            (name.as_str(), dtype, tensor.shape(), bytes)
        })
        .collect();
    encoded.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut header = String::from("{");
    let mut first = true;
    // An empty metadata map is left out of the header rather than written as `{}`.
    if !metadata.is_empty() {
        header.push_str("\"__metadata__\":");
        header.push_str(&serde_json::to_string(metadata).expect("a map of strings serializes"));
        first = false;
    }
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in &encoded {
        if !first {
            header.push(',');
        }
        first = false;
        let end = offset + bytes.len();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{dtype}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            serde_json::to_string(name).expect("a string serializes"),
            serde_json::to_string(shape).expect("a list of numbers serializes"),
        ));
        offset = end;
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, bytes) in &encoded {
        out.extend_from_slice(bytes);
    }
    out
}

/// The tensor's values as safetensors stores them: little-endian, in the tensor's own type.
fn little_endian_bytes(tensor: &Tensor) -> (Dtype, Vec<u8>) {
    match tensor.dtype() {
        DType::F32 => {
            let bytes = tensor
                .to_vec_f32()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            (Dtype::F32, bytes)
        }
        DType::F64 => {
            let bytes = tensor
                .to_vec_f64()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            (Dtype::F64, bytes)
        }
    }
}

/// Names of tensors and metadata that hold optimizer state start with this ("optim.",
/// "optim_g.", …): [`save_training`] puts them in their own file.
pub const OPTIMIZER_PREFIX: &str = "optim";

/// The metadata key of the optimizer file that ties it to its weights: the FNV-1a hash of the
/// weights file's bytes, in hex.
pub const WEIGHTS_HASH_KEY: &str = "weights_fnv1a64";

/// FNV-1a, 64 bits: a stable fingerprint of a file's bytes, not a cryptographic hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file that holds the optimizer state of the weights at `path`:
/// `model.safetensors` → `model.optimizer.safetensors`, in the same folder.
pub fn optimizer_path(path: &Path) -> PathBuf {
    beside(path, "optimizer")
}

/// Where [`save_training`] stages the next optimizer state until its weights are written:
/// `model.optimizer-next.safetensors`.
fn staged_optimizer_path(path: &Path) -> PathBuf {
    beside(path, "optimizer-next")
}

/// `<stem>.<part>.safetensors` in the folder of `path`.
fn beside(path: &Path, part: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.{part}.safetensors"))
}

/// Saves a training checkpoint as two safetensors files, so that the weights file holds the
/// model's tensors and nothing else (PyTorch's `load_state_dict(strict=True)` takes it as it
/// is): the tensors and metadata whose names start with [`OPTIMIZER_PREFIX`] go to
/// [`optimizer_path`]`(path)`, the rest to `path`.
///
/// The optimizer file records the hash of the weights file it belongs to
/// ([`WEIGHTS_HASH_KEY`]), and the three steps keep a matching pair on disk whenever the save
/// stops: the new optimizer state is staged beside (`<stem>.optimizer-next.safetensors`), the
/// weights replace the old ones, and the staged file is renamed into place; each write is
/// atomic. [`load_training`] takes whichever optimizer file matches the weights.
pub fn save_training(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), Error> {
    check_unique_names(path, tensors)?;
    let is_optimizer = |name: &str| name.starts_with(OPTIMIZER_PREFIX);
    let (optimizer, weights): (Vec<_>, Vec<_>) = tensors
        .iter()
        .cloned()
        .partition(|(name, _)| is_optimizer(name));
    let (mut optimizer_meta, weights_meta): (BTreeMap<_, _>, BTreeMap<_, _>) = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| is_optimizer(k));
    let weights_bytes = encode(&weights, &weights_meta);
    optimizer_meta.insert(
        WEIGHTS_HASH_KEY.into(),
        format!("{:016x}", fnv1a64(&weights_bytes)),
    );
    let staged = staged_optimizer_path(path);
    write_atomically(&staged, &encode(&optimizer, &optimizer_meta))
        .map_err(|e| Error::new(&staged, format!("cannot write the optimizer state: {e}")))?;
    write_atomically(path, &weights_bytes)
        .map_err(|e| Error::new(path, format!("cannot write checkpoint: {e}")))?;
    let optimizer_file = optimizer_path(path);
    fs::rename(&staged, &optimizer_file)
        .and_then(|()| sync_folder_of(&optimizer_file))
        .map_err(|e| {
            Error::new(
                &optimizer_file,
                format!("cannot move the optimizer state into place: {e}"),
            )
        })
}

/// Makes a rename in the folder of `path` durable.
fn sync_folder_of(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => fs::File::open(folder)?.sync_all(),
        None => fs::File::open(".")?.sync_all(),
    }
}

/// Reads a checkpoint written by [`save_training`]: the weights at `path` and the optimizer
/// state written for them merged in (tensors and metadata), from [`optimizer_path`] or, when a
/// save stopped before moving it there, from the staged file. A checkpoint of the older
/// single-file layout (optimizer state inside the weights file) loads as it is, and so do
/// weights with no optimizer file beside them: whether optimizer state came with it,
/// [`Checkpoint::has_optimizer_state`] says.
pub fn load_training(path: &Path) -> Result<Checkpoint, Error> {
    let bytes =
        fs::read(path).map_err(|e| Error::new(path, format!("cannot read checkpoint: {e}")))?;
    let mut checkpoint = decode(&bytes, path)?;
    let want = format!("{:016x}", fnv1a64(&bytes));
    let mut found = None;
    for candidate in [optimizer_path(path), staged_optimizer_path(path)] {
        if !probe(&candidate)? {
            continue;
        }
        let optimizer = load(&candidate)?;
        if optimizer.metadata.get(WEIGHTS_HASH_KEY) == Some(&want) {
            found = Some(optimizer);
            break;
        }
        found.get_or_insert(optimizer);
    }
    let Some(optimizer) = found else {
        return Ok(checkpoint);
    };
    if optimizer.metadata.get(WEIGHTS_HASH_KEY) != Some(&want) {
        return Err(Error::new(
            &optimizer.path,
            format!(
                "was written for other weights than {} (its {WEIGHTS_HASH_KEY} is {}, the \
                 weights' hash is {want}), and no optimizer file beside them matches: the pair \
                 was mixed up by hand. The weights are whole; to go on from them with fresh \
                 optimizer moments, move this file away",
                path.display(),
                optimizer
                    .metadata
                    .get(WEIGHTS_HASH_KEY)
                    .map_or("missing".to_string(), |f| format!("'{f}'"))
            ),
        ));
    }
    for (name, tensor) in optimizer.tensors {
        if checkpoint.tensors.insert(name.clone(), tensor).is_some() {
            return Err(Error::new(
                &optimizer.path,
                format!(
                    "tensor `{name}` is in the weights file {} too",
                    path.display()
                ),
            ));
        }
    }
    checkpoint.metadata.extend(
        optimizer
            .metadata
            .into_iter()
            .filter(|(k, _)| k != WEIGHTS_HASH_KEY),
    );
    Ok(checkpoint)
}

/// Reads a safetensors file (F32 and F64 tensors; other dtypes are an error naming the tensor
/// and its dtype).
pub fn load(path: &Path) -> Result<Checkpoint, Error> {
    let bytes =
        fs::read(path).map_err(|e| Error::new(path, format!("cannot read checkpoint: {e}")))?;
    decode(&bytes, path)
}

/// A safetensors file's bytes as a [`Checkpoint`]; errors name `path`.
fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, Error> {
    // The parser checks the header length, the JSON, and that every tensor's bytes lie inside
    // the file, so a truncated or foreign file is an error here rather than a panic later.
    let not_safetensors = |e| Error::new(path, format!("not a valid safetensors file: {e}"));
    let file = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;

    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let tensor = match view.dtype() {
            Dtype::F32 => {
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Tensor::from_vec(values, view.shape())
            }
            Dtype::F64 => {
                let values: Vec<f64> = view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect();
                Tensor::from_vec(values, view.shape())
            }
            other => {
                return Err(Error::new(
                    path,
                    format!("tensor `{name}` has dtype {other}; only F32 and F64 can be loaded"),
                ))
            }
        }
        .map_err(|e| Error::new(path, format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, tensor);
    }

    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(Checkpoint {
        tensors,
        metadata,
        path: path.to_path_buf(),
    })
}

impl Checkpoint {
    /// Whether the checkpoint holds any optimizer state (names starting with
    /// [`OPTIMIZER_PREFIX`]): what resuming a training run needs beyond the weights.
    pub fn has_optimizer_state(&self) -> bool {
        self.tensors
            .keys()
            .chain(self.metadata.keys())
            .any(|k| k.starts_with(OPTIMIZER_PREFIX))
    }

    /// The tensor called `name`, which must have `shape`: errors name the file, the tensor, and
    /// (on mismatch) both shapes; a missing name lists the names the file has (up to ~10).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, Error> {
        let Some(tensor) = self.tensors.get(name) else {
            return Err(self.error(format!(
                "no tensor `{name}`; the file has {}",
                self.some_names()
            )));
        };
        if tensor.shape() != shape {
            return Err(self.error(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                tensor.shape()
            )));
        }
        Ok(tensor)
    }

    /// The metadata value for `key`; a missing key is an error naming it.
    pub fn meta(&self, key: &str) -> Result<&str, Error> {
        match self.metadata.get(key) {
            Some(value) => Ok(value),
            None => {
                let keys: Vec<&str> = self.metadata.keys().map(String::as_str).collect();
                Err(self.error(format!(
                    "no metadata `{key}`; the keys are [{}]",
                    keys.join(", ")
                )))
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::new(&self.path, message)
    }

    /// The first few tensor names, enough to spot a typo or a renamed layer without flooding
    /// the message when a model has hundreds of tensors.
    fn some_names(&self) -> String {
        const SHOWN: usize = 10;
        if self.tensors.is_empty() {
            return "no tensors".to_string();
        }
        let mut names: Vec<&str> = self
            .tensors
            .keys()
            .map(String::as_str)
            .take(SHOWN)
            .collect();
        let more = self.tensors.len().saturating_sub(SHOWN);
        let more_text = format!("… ({more} more)");
        if more > 0 {
            names.push(&more_text);
        }
        format!("[{}]", names.join(", "))
    }
}

/// What is at a path, in words, for errors ("a folder", "a FIFO (named pipe)", …).
fn kind_of(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "neither a file nor a folder"
    }
}

/// Whether writing to something of this type means writing into a stream rather than
/// replacing a file: a FIFO or a character device (`/dev/null`, `/dev/stdout` on a terminal).
fn is_stream(file_type: &fs::FileType) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        file_type.is_fifo() || file_type.is_char_device()
    }
    #[cfg(not(unix))]
    {
        let _ = file_type;
        false
    }
}

/// Whether an error is "too many levels of symbolic links": a link that leads back to itself.
fn is_link_loop(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    const ELOOP: i32 = 40;
    #[cfg(not(target_os = "linux"))]
    const ELOOP: i32 = 62; // macOS and the BSDs
    e.raw_os_error() == Some(ELOOP)
}

fn refuse(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes `bytes` to `path` so that `path` always holds either the old contents or all of the new
/// ones: write a temporary file next to it (`<name>.tmp-<pid>`, same folder so the rename stays on
/// one file system), fsync it, rename it over `path`, then fsync the folder so the rename itself
/// is durable. Creates the parent folder if missing. Pictures, metrics and reports are saved the
/// same way: this is the project's one atomic write.
///
/// Only a regular file (or nothing) is ever replaced:
/// - a symbolic link to a regular file stays a link: the file it points to is replaced;
/// - a FIFO or a character device (`/dev/null`, a terminal, `/dev/stdout` on a pipe) is written
///   straight into, as a shell's `>` would: a stream has no previous contents to keep, and
///   renaming over it would swap the device node for a plain file;
/// - anything else (a folder, a block device, a socket, a link that leads nowhere or loops) is
///   an error that says what is there, and nothing is written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            // Through any symbolic links, so that the link itself survives the rename.
            fs::canonicalize(path)?
        }
        Ok(meta) if is_stream(&meta.file_type()) => {
            let mut stream = fs::OpenOptions::new().write(true).open(path)?;
            stream.write_all(bytes)?;
            return stream.flush();
        }
        Ok(meta) => {
            return Err(refuse(format!(
                "{} is {}, not a regular file: refusing to replace it",
                path.display(),
                kind_of(&meta.file_type())
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::symlink_metadata(path) {
            Ok(_) => {
                let to = fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(refuse(format!(
                    "{} is a symbolic link to {to}, which does not exist: remove the link or \
                     create what it points to",
                    path.display()
                )));
            }
            Err(_) => path.to_path_buf(),
        },
        Err(e) if is_link_loop(&e) => {
            return Err(refuse(format!(
                "{} is a loop of symbolic links ({e}): it leads to no file",
                path.display()
            )))
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{} cannot be inspected: {e}", path.display()),
            ));
        }
    };
    let Some(file_name) = target.file_name() else {
        return Err(refuse(format!("{} does not name a file", target.display())));
    };
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&folder)?;

    let tmp_path = folder.join(temporary_name(file_name));
    let written = (|| {
        // A leftover of an earlier process with our id; `create_new` below then never follows
        // a link planted under the temporary name.
        if fs::symlink_metadata(&tmp_path).is_ok() {
            fs::remove_file(&tmp_path)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, &target)
    })();
    if let Err(e) = written {
        // Best effort: the write already failed, and a leftover is removed by the next run.
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }

    // Not every platform can open a folder to sync it; the data itself is already safe.
    if let Ok(dir) = fs::File::open(&folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `<name>.tmp-<pid>`: the temporary file [`write_atomically`] writes before its rename.
fn temporary_name(file_name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut name = file_name.to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    name
}

/// The process id in a temporary file's name (`checkpoint.safetensors.tmp-4242` → 4242).
fn temporary_pid(name: &str) -> Option<u32> {
    let (base, pid) = name.rsplit_once(".tmp-")?;
    if base.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running. Where that cannot be told, a process is taken to have ended.
fn process_is_running(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

/// Removes the temporary files that [`write_atomically`] left in `folder` when a run was killed
/// between writing one and renaming it: regular files named `<name>.tmp-<pid>` whose process is
/// not running (and not this one). Nothing else is touched: no other names, no folders, nothing
/// outside `folder`. Returns the files removed.
pub fn remove_stale_temporaries(folder: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let ours = std::process::id();
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_pid) else {
            continue;
        };
        if pid == ours || process_is_running(pid) || !entry.file_type()?.is_file() {
            continue;
        }
        fs::remove_file(entry.path())?;
        removed.push(entry.path());
    }
    removed.sort();
    Ok(removed)
}

/// Whether there is a checkpoint at `path` to resume from: `Ok(false)` when nothing is there
/// (a fresh run), `Ok(true)` for a regular file or a link to one. Anything else is an error
/// naming what is there, so that a link that leads nowhere, a loop of links or a folder in the
/// checkpoint's place never passes for "no checkpoint yet" and silently starts over.
pub fn probe(path: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::new(path, format!("cannot inspect: {e}"))),
        Ok(_) => {}
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(meta) => Err(Error::new(
            path,
            format!(
                "is {}, not a checkpoint file: move it away to start afresh",
                kind_of(&meta.file_type())
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let to = fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            Err(Error::new(
                path,
                format!(
                    "is a symbolic link to {to}, which does not exist: there is no checkpoint \
                     to resume from; remove the link to start afresh"
                ),
            ))
        }
        Err(e) if is_link_loop(&e) => Err(Error::new(
            path,
            format!(
                "is a loop of symbolic links ({e}): there is no checkpoint to resume from; \
                 remove the link to start afresh"
            ),
        )),
        Err(e) => Err(Error::new(
            path,
            format!("cannot be opened to resume from: {e}"),
        )),
    }
}

/// What a safetensors file's metadata says about its origin, for the error when it lacks
/// ferrograd's settings: "it has no metadata at all", or the keys it has and, for the `format`
/// key other libraries write, which library that is.
pub fn origin_note(metadata: &BTreeMap<String, String>) -> String {
    if metadata.is_empty() {
        return "its header has no metadata at all".into();
    }
    let keys: Vec<&str> = metadata.keys().map(String::as_str).take(8).collect();
    let mut note = format!("its metadata has only [{}]", keys.join(", "));
    if let Some(format) = metadata.get("format") {
        let writer = match format.as_str() {
            "pt" => Some("PyTorch (safetensors.torch)"),
            "tf" => Some("TensorFlow (safetensors.tensorflow)"),
            "flax" => Some("Flax (safetensors.flax)"),
            "np" => Some("NumPy (safetensors.numpy)"),
            "mlx" => Some("MLX"),
            "paddle" => Some("PaddlePaddle"),
            _ => None,
        };
        note.push_str(&match writer {
            Some(w) => format!("; format = '{format}' says {w} wrote it"),
            None => format!("; format = '{format}'"),
        });
    }
    note
}

impl Checkpoint {
    /// Checks that the file holds exactly the tensors of `expected` (a freshly built model's
    /// state: weights, buffers, optimizer state), each with its shape, and that every value is
    /// finite. A checkpoint that fails any of these would load into a model it does not
    /// describe, or resume a run with NaN or infinite weights.
    pub fn check_tensors(&self, expected: &[(String, Tensor)]) -> Result<(), Error> {
        for (name, model_tensor) in expected {
            let Some(saved) = self.tensors.get(name) else {
                return Err(self.error(format!(
                    "no tensor `{name}`, which the model its settings describe has; the file \
                     has {}",
                    self.some_names()
                )));
            };
            if saved.shape() != model_tensor.shape() {
                return Err(self.error(format!(
                    "tensor `{name}` has shape {:?}, but the model its settings describe needs {:?}",
                    saved.shape(),
                    model_tensor.shape()
                )));
            }
        }
        let names: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let extra: Vec<&str> = self
            .tensors
            .keys()
            .map(String::as_str)
            .filter(|n| !names.contains(n))
            .collect();
        if let Some(first) = extra.first() {
            return Err(self.error(format!(
                "tensor `{first}` ({} such in all) is not part of the model its settings describe",
                extra.len()
            )));
        }
        for (name, tensor) in &self.tensors {
            let values = tensor.to_vec_f64();
            let mut bad = values.iter().enumerate().filter(|(_, v)| !v.is_finite());
            if let Some((index, value)) = bad.next() {
                return Err(self.error(format!(
                    "tensor `{name}` holds {} non-finite values of {} (the first, at index \
                     {index}, is {value}): the run that wrote it diverged or the file is damaged",
                    1 + bad.count(),
                    values.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn tensor_f32(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape).unwrap()
    }

    fn tensor_f64(values: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape).unwrap()
    }

    fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A small checkpoint on disk, for the tests that read or damage one.
    fn saved_example(dir: &Path) -> PathBuf {
        let path = dir.join("model.safetensors");
        let tensors = vec![
            (
                "encoder.0.weight".to_string(),
                tensor_f32(&[1.0, -2.5, 3.25, 4.0, 0.0, -0.0], &[2, 3]),
            ),
            (
                "encoder.0.bias".to_string(),
                tensor_f64(&[0.1, -1e-300], &[2]),
            ),
        ];
        save(&path, &tensors, &metadata(&[("epoch", "7")])).unwrap();
        path
    }

    fn temp_names(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tmp"))
            .collect()
    }

    #[test]
    fn round_trip_keeps_values_types_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/folder/ckpt.safetensors");
        let weight = tensor_f32(
            &[1.0, -2.5, 3.25, f32::MAX, f32::MIN_POSITIVE, -0.0],
            &[2, 3],
        );
        let bias = tensor_f64(&[0.1, -1e-300, 12345.678901234567], &[3]);
        let scalar = tensor_f32(&[42.0], &[]);
        let tensors = vec![
            ("encoder.0.weight".to_string(), weight.clone()),
            ("encoder.0.bias".to_string(), bias.clone()),
            ("step".to_string(), scalar.clone()),
        ];
        let meta = metadata(&[("epoch", "3"), ("model", "vae")]);
        save(&path, &tensors, &meta).unwrap();

        let ckpt = load(&path).unwrap();
        assert_eq!(ckpt.path, path);
        assert_eq!(ckpt.metadata, meta);
        assert_eq!(ckpt.meta("epoch").unwrap(), "3");
        assert_eq!(ckpt.tensors.len(), 3);

        let w = ckpt.get("encoder.0.weight", &[2, 3]).unwrap();
        assert_eq!(w.dtype(), DType::F32);
        assert_eq!(w.to_vec_f32(), weight.to_vec_f32());
        let b = ckpt.get("encoder.0.bias", &[3]).unwrap();
        assert_eq!(b.dtype(), DType::F64);
        assert_eq!(b.to_vec_f64(), bias.to_vec_f64());
        let s = ckpt.get("step", &[]).unwrap();
        assert_eq!(s.to_vec_f32(), vec![42.0]);
    }

    #[test]
    fn file_is_standard_safetensors() {
        // What PyTorch's reader expects: u64 LE header length, a JSON header with dtype, shape
        // and data_offsets per tensor, then the little-endian values.
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let bytes = fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let weight = &header["encoder.0.weight"];
        assert_eq!(weight["dtype"], "F32");
        assert_eq!(weight["shape"], serde_json::json!([2, 3]));
        let bias = &header["encoder.0.bias"];
        assert_eq!(bias["dtype"], "F64");
        assert_eq!(header["__metadata__"]["epoch"], "7");

        let start = 8 + n + weight["data_offsets"][0].as_u64().unwrap() as usize;
        let first = f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
        assert_eq!(first, 1.0);
    }

    #[test]
    fn wrong_shape_names_file_tensor_and_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let ckpt = load(&path).unwrap();
        let err = ckpt.get("encoder.0.weight", &[3, 2]).unwrap_err();
        assert_eq!(err.path, path);
        let text = err.to_string();
        assert!(text.contains("model.safetensors"), "{text}");
        assert!(text.contains("encoder.0.weight"), "{text}");
        assert!(text.contains("[2, 3]") && text.contains("[3, 2]"), "{text}");
    }

    #[test]
    fn missing_name_lists_the_names_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let ckpt = load(&path).unwrap();
        let text = ckpt
            .get("decoder.0.weight", &[2, 3])
            .unwrap_err()
            .to_string();
        assert!(text.contains("model.safetensors"), "{text}");
        assert!(text.contains("decoder.0.weight"), "{text}");
        assert!(text.contains("encoder.0.weight"), "{text}");
        assert!(text.contains("encoder.0.bias"), "{text}");

        let text = ckpt.meta("learning_rate").unwrap_err().to_string();
        assert!(
            text.contains("learning_rate") && text.contains("epoch"),
            "{text}"
        );
    }

    #[test]
    fn missing_name_list_is_cut_short_for_big_models() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.safetensors");
        let tensors: Vec<(String, Tensor)> = (0..25)
            .map(|i| (format!("layer{i:02}.weight"), tensor_f32(&[i as f32], &[1])))
            .collect();
        save(&path, &tensors, &BTreeMap::new()).unwrap();
        let ckpt = load(&path).unwrap();
        assert!(ckpt.metadata.is_empty());
        let text = ckpt.get("nope", &[1]).unwrap_err().to_string();
        assert!(text.contains("layer00.weight"), "{text}");
        assert!(!text.contains("layer24.weight"), "{text}");
        assert!(text.contains("15 more"), "{text}");
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let bytes = fs::read(&path).unwrap();
        // Cut inside the values, inside the header, and inside the length prefix.
        for keep in [bytes.len() - 1, bytes.len() / 2, 20, 5, 0] {
            fs::write(&path, &bytes[..keep]).unwrap();
            let err = load(&path).unwrap_err();
            assert_eq!(err.path, path, "cut to {keep} bytes");
            assert!(err.to_string().contains("model.safetensors"));
        }
    }

    #[test]
    fn garbage_and_missing_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.safetensors");
        fs::write(&path, b"this is not a checkpoint, just some text on disk").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("garbage.safetensors"), "{err}");

        // A plausible length prefix followed by something that is not JSON.
        let mut bytes = 16u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff; 16]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path).unwrap_err().path, path);

        let missing = dir.path().join("absent.safetensors");
        let err = load(&missing).unwrap_err();
        assert!(err.to_string().contains("absent.safetensors"), "{err}");
    }

    #[test]
    fn other_dtypes_are_an_error_naming_tensor_and_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ints.safetensors");
        let values: Vec<u8> = [1i32, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::I32, vec![3], &values).unwrap();
        let bytes = safetensors::serialize([("labels", view)], None).unwrap();
        fs::write(&path, bytes).unwrap();
        let text = load(&path).unwrap_err().to_string();
        assert!(text.contains("ints.safetensors"), "{text}");
        assert!(text.contains("labels") && text.contains("I32"), "{text}");
    }

    #[test]
    fn saving_again_replaces_the_file_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let tensors = vec![("only".to_string(), tensor_f32(&[9.0, 8.0], &[2]))];
        save(&path, &tensors, &metadata(&[("epoch", "8")])).unwrap();

        let ckpt = load(&path).unwrap();
        assert_eq!(ckpt.tensors.keys().collect::<Vec<_>>(), vec!["only"]);
        assert_eq!(ckpt.meta("epoch").unwrap(), "8");
        assert_eq!(ckpt.get("only", &[2]).unwrap().to_vec_f32(), vec![9.0, 8.0]);
        assert!(temp_names(dir.path()).is_empty());
    }

    #[test]
    fn duplicate_names_are_an_error_and_keep_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_example(dir.path());
        let before = fs::read(&path).unwrap();
        let tensors = vec![
            ("w".to_string(), tensor_f32(&[1.0], &[1])),
            ("w".to_string(), tensor_f32(&[2.0], &[1])),
        ];
        let err = save(&path, &tensors, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.path, path);
        assert!(err.message.contains("`w`"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert!(temp_names(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_save_keeps_the_previous_checkpoint() {
        // The target is a folder, so the final rename fails after the temporary file is written.
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("not_a_file");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("inside"), b"keep me").unwrap();
        let tensors = vec![("w".to_string(), tensor_f32(&[1.0], &[1]))];
        let err = save(&folder, &tensors, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("not_a_file"), "{err}");
        assert_eq!(fs::read(folder.join("inside")).unwrap(), b"keep me");
        assert!(temp_names(dir.path()).is_empty());
    }
}
