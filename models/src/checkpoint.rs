//! Checkpoints: named tensors in safetensors files, written atomically.
//!
//! The files are standard safetensors (an 8-byte little-endian header length, a JSON header,
//! then the raw little-endian values), so PyTorch's `safetensors.torch.load_file` reads them
//! with the tensor names as given here (`encoder.0.weight`, …).
//!
//! Every error names the file, and the tensor when one is at fault, because "shape mismatch"
//! alone is no help when a run has a dozen checkpoints and a hundred tensors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ferrograd_engine::{DType, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// What went wrong with a checkpoint, naming the file (and the tensor, when one is at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointError {
    pub path: PathBuf,
    pub message: String,
}

impl CheckpointError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        CheckpointError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for CheckpointError {}

/// A loaded checkpoint: tensors by name, and string metadata.
#[derive(Debug)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
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
) -> Result<(), CheckpointError> {
    // The safetensors header is a JSON object keyed by name: a second tensor with the same name
    // would silently replace the first, so refuse it here.
    let mut seen = BTreeSet::new();
    for (name, _) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(CheckpointError::new(
                path,
                format!("tensor `{name}` is given twice; names must be unique"),
            ));
        }
    }

    // The views borrow their bytes, so the bytes must live in a vector of their own first.
    let encoded: Vec<(&str, Dtype, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(name, tensor)| {
            let (dtype, bytes) = little_endian_bytes(tensor);
            (name.as_str(), dtype, tensor.shape(), bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(encoded.len());
    for (name, dtype, shape, bytes) in &encoded {
        let view = TensorView::new(*dtype, shape.to_vec(), bytes).map_err(|e| {
            CheckpointError::new(path, format!("cannot store tensor `{name}`: {e}"))
        })?;
        views.push((*name, view));
    }

    // An empty metadata map is left out of the header rather than written as `{}`.
    let header_metadata: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone().into_iter().collect())
    };
    let bytes = safetensors::serialize(views, header_metadata)
        .map_err(|e| CheckpointError::new(path, format!("cannot encode checkpoint: {e}")))?;

    write_atomically(path, &bytes)
        .map_err(|e| CheckpointError::new(path, format!("cannot write checkpoint: {e}")))
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

/// Reads a safetensors file (F32 and F64 tensors; other dtypes are an error naming the tensor
/// and its dtype).
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = fs::read(path)
        .map_err(|e| CheckpointError::new(path, format!("cannot read checkpoint: {e}")))?;
    // The parser checks the header length, the JSON, and that every tensor's bytes lie inside
    // the file, so a truncated or foreign file is an error here rather than a panic later.
    let not_safetensors =
        |e| CheckpointError::new(path, format!("not a valid safetensors file: {e}"));
    let file = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;

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
                return Err(CheckpointError::new(
                    path,
                    format!("tensor `{name}` has dtype {other}; only F32 and F64 can be loaded"),
                ))
            }
        }
        .map_err(|e| CheckpointError::new(path, format!("tensor `{name}`: {e}")))?;
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
    /// The tensor called `name`, which must have `shape`: errors name the file, the tensor, and
    /// (on mismatch) both shapes; a missing name lists the names the file has (up to ~10).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, CheckpointError> {
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
    pub fn meta(&self, key: &str) -> Result<&str, CheckpointError> {
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

    fn error(&self, message: String) -> CheckpointError {
        CheckpointError::new(&self.path, message)
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

/// Writes `bytes` to `path` so that `path` always holds either the old contents or all of the new
/// ones: write a temporary file next to it (`<name>.tmp-<pid>`, same folder so the rename stays on
/// one file system), fsync it, rename it over `path`, then fsync the folder so the rename itself
/// is durable. Creates the parent folder if missing. Pictures are saved the same way.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ));
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(folder)?;

    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp_path = folder.join(tmp_name);

    let written = (|| {
        let mut file = fs::File::create(&tmp_path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, path)
    })();
    if let Err(e) = written {
        // Best effort: the write already failed, and a leftover temporary file is harmless.
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }

    // Not every platform can open a folder to sync it; the data itself is already safe.
    if let Ok(dir) = fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
