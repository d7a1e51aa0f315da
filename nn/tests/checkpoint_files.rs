//! The project's one atomic write, and the checkpoint files it writes: what it does to each kind
//! of thing that may already be at the path (regular file, link, FIFO, device, socket, folder,
//! a link that leads nowhere or loops), leftovers of killed runs, and bytes that are the same
//! for the same values.
#![cfg(unix)] // FIFOs, device nodes, sockets and symbolic links

use ferrograd_engine::Tensor;
use ferrograd_nn::checkpoint::{self, probe, remove_stale_temporaries, write_atomically};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::Path;
use std::process::Command;

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Reads everything written into the FIFO at `path`, on a thread (opening a FIFO blocks until
/// the other end opens it).
fn drain(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    })
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_fifo_is_written_into_and_stays_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.png");
    mkfifo(&fifo);
    let reader = drain(&fifo);
    write_atomically(&fifo, b"picture bytes").unwrap();
    // Checked before joining: had the FIFO been renamed over, the reader would wait forever.
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(reader.join().unwrap(), b"picture bytes");
    assert_eq!(names(dir.path()), ["out.png"], "no temporary file left");
}

#[test]
fn a_character_device_is_written_into_and_stays_a_device() {
    // A copy of /dev/null's node (major 1, minor 3) in a temporary folder. Creating device
    // nodes needs privileges; without them this part cannot run, and says so.
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("null");
    let made = Command::new("mknod")
        .args([device.to_str().unwrap(), "c", "1", "3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("skipped: cannot create a device node here (not privileged)");
        return;
    }
    write_atomically(&device, b"gone into the void").unwrap();
    let meta = fs::symlink_metadata(&device).unwrap();
    assert!(meta.file_type().is_char_device(), "still a device node");
    assert_eq!(names(dir.path()), ["null"], "no temporary file left");
    // The same through a link, as /dev/stdout is one.
    let link = dir.path().join("stdout");
    symlink(&device, &link).unwrap();
    write_atomically(&link, b"x").unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(&device)
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn a_socket_or_a_folder_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("checkpoint.safetensors");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let err = write_atomically(&socket, b"data").unwrap_err().to_string();
    assert!(
        err.contains("a socket") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());

    let folder = dir.path().join("metrics.json");
    fs::create_dir(&folder).unwrap();
    let err = write_atomically(&folder, b"{}").unwrap_err().to_string();
    assert!(err.contains("a folder"), "{err}");
    assert!(folder.is_dir());
    assert_eq!(
        names(dir.path()),
        ["checkpoint.safetensors", "metrics.json"],
        "no temporary file left"
    );
}

#[test]
fn a_link_to_a_file_stays_a_link_and_the_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.json");
    symlink(&real, &link).unwrap();
    write_atomically(&link, b"new").unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"new");
    assert_eq!(names(dir.path()), ["link.json", "real.json"]);
}

#[test]
fn a_dangling_link_or_a_loop_is_an_error_for_writes_and_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = dir.path().join("dangling");
    symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let looped = dir.path().join("loop");
    symlink(&looped, &looped).unwrap();

    let err = write_atomically(&dangling, b"x").unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !dir.path().join("nowhere").exists(),
        "nothing created through it"
    );
    let err = write_atomically(&looped, b"x").unwrap_err().to_string();
    assert!(err.contains("loop"), "{err}");

    // `--resume` asks `probe` whether there is a checkpoint: neither is "none yet".
    let err = probe(&dangling).unwrap_err().to_string();
    assert!(
        err.contains("symbolic link") && err.contains("does not exist"),
        "{err}"
    );
    let err = probe(&looped).unwrap_err().to_string();
    assert!(err.contains("loop of symbolic links"), "{err}");
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    assert!(probe(&folder).unwrap_err().to_string().contains("a folder"));
    assert!(!probe(&dir.path().join("absent")).unwrap());
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(probe(&file).unwrap());
}

#[test]
fn only_stale_temporary_files_of_ours_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // Process ids above Linux's largest (2^22) are never running.
    let stale = [
        "checkpoint.safetensors.tmp-99999999",
        "metrics.json.tmp-88888888",
        "preview_000250.png.tmp-77777777",
        "metrics.tmp-66666666", // the name an earlier version gave metrics.json's temporary file
    ];
    for name in stale {
        fs::write(p.join(name), b"half a file").unwrap();
    }
    let ours = format!("checkpoint.safetensors.tmp-{}", std::process::id());
    let kept = [
        "checkpoint.safetensors",
        "notes.tmp-abc",
        "tmp-12345",
        "data.tmp-",
        ours.as_str(),
    ];
    for name in kept {
        fs::write(p.join(name), b"keep").unwrap();
    }
    fs::create_dir(p.join("folder.tmp-55555555")).unwrap();
    symlink(
        p.join("checkpoint.safetensors"),
        p.join("link.tmp-44444444"),
    )
    .unwrap();

    let removed = remove_stale_temporaries(p).unwrap();
    let mut removed: Vec<String> = removed
        .iter()
        .map(|r| r.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    removed.sort();
    let mut expected: Vec<String> = stale.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(removed, expected);
    for name in kept {
        assert!(p.join(name).exists(), "{name} kept");
    }
    assert!(
        p.join("folder.tmp-55555555").is_dir(),
        "folders are not touched"
    );
    assert!(
        fs::symlink_metadata(p.join("link.tmp-44444444")).is_ok(),
        "links are not touched"
    );
}

fn example() -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
    let tensors = vec![
        (
            "b".to_string(),
            Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap(),
        ),
        (
            "a".to_string(),
            Tensor::from_vec(vec![0.5f64, -0.25], &[2]).unwrap(),
        ),
    ];
    // Enough keys that a hash map's order would differ from one map to the next.
    let metadata = (0..40)
        .map(|i| (format!("key{i:02}"), format!("value {i}")))
        .collect();
    (tensors, metadata)
}

#[test]
fn the_same_values_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (tensors, metadata) = example();
    let first = dir.path().join("first.safetensors");
    let second = dir.path().join("second.safetensors");
    checkpoint::save(&first, &tensors, &metadata).unwrap();
    for _ in 0..5 {
        checkpoint::save(&second, &tensors, &metadata).unwrap();
        assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
    }
    // And the file is one that the safetensors reader takes, with everything in it.
    let bytes = fs::read(&first).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.names().len(), 2);
    let loaded = checkpoint::load(&first).unwrap();
    assert_eq!(loaded.metadata, metadata);
    assert_eq!(loaded.tensors["a"].to_vec_f64(), vec![0.5, -0.25]);
    assert_eq!(loaded.tensors["b"].to_vec_f32(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn a_file_written_elsewhere_says_what_it_lacks_and_what_wrote_it() {
    let pt = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let note = checkpoint::origin_note(&pt);
    assert!(
        note.contains("format = 'pt'") && note.contains("PyTorch"),
        "{note}"
    );
    let note = checkpoint::origin_note(&BTreeMap::new());
    assert!(note.contains("no metadata"), "{note}");
}

#[test]
fn tensors_are_checked_against_the_model_names_shapes_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let (tensors, metadata) = example();
    checkpoint::save(&path, &tensors, &metadata).unwrap();
    let ckpt = checkpoint::load(&path).unwrap();
    ckpt.check_tensors(&tensors).unwrap();

    let wrong_shape = vec![
        tensors[0].clone(),
        (
            "a".to_string(),
            Tensor::from_vec(vec![0.0f64; 3], &[3]).unwrap(),
        ),
    ];
    let err = ckpt.check_tensors(&wrong_shape).unwrap_err().to_string();
    assert!(
        err.contains("c.safetensors")
            && err.contains("`a`")
            && err.contains("[2]")
            && err.contains("[3]"),
        "{err}"
    );
    let err = ckpt.check_tensors(&tensors[..1]).unwrap_err().to_string();
    assert!(
        err.contains("`a`") && err.contains("not part of the model"),
        "{err}"
    );

    let with_nan = vec![
        tensors[0].clone(),
        (
            "a".to_string(),
            Tensor::from_vec(vec![f64::NAN, 1.0], &[2]).unwrap(),
        ),
    ];
    checkpoint::save(&path, &with_nan, &metadata).unwrap();
    let err = checkpoint::load(&path)
        .unwrap()
        .check_tensors(&tensors)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`a`") && err.contains("non-finite") && err.contains("NaN"),
        "{err}"
    );
}

/// A training checkpoint with weights `w`, `b` and Adam-like state under "optim.".
fn training_state() -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
    let t = |v: Vec<f32>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
    let tensors = vec![
        ("w".to_string(), t(vec![1.0, 2.0])),
        ("b".to_string(), t(vec![0.5])),
        ("optim.exp_avg.w".to_string(), t(vec![0.1, 0.2])),
        ("optim.exp_avg_sq.w".to_string(), t(vec![0.01, 0.04])),
    ];
    let metadata = BTreeMap::from([
        ("epoch".to_string(), "3".to_string()),
        ("optim.step".to_string(), "30".to_string()),
    ]);
    (tensors, metadata)
}

#[test]
fn training_checkpoints_keep_the_optimizer_state_in_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let (tensors, metadata) = training_state();
    checkpoint::save_training(&path, &tensors, &metadata).unwrap();
    let optimizer = checkpoint::optimizer_path(&path);
    assert_eq!(
        optimizer,
        dir.path().join("checkpoint.optimizer.safetensors")
    );

    // The weights file holds the model and its own metadata, nothing of the optimizer: what a
    // strict state-dict load elsewhere needs.
    let weights = checkpoint::load(&path).unwrap();
    assert_eq!(
        weights.tensors.keys().collect::<Vec<_>>(),
        vec!["b", "w"],
        "only the model's tensors"
    );
    assert_eq!(weights.metadata.keys().collect::<Vec<_>>(), vec!["epoch"]);
    assert!(!weights.has_optimizer_state());
    let state = checkpoint::load(&optimizer).unwrap();
    assert_eq!(state.tensors.len(), 2);
    assert_eq!(state.metadata["optim.step"], "30");

    // Loaded as a pair, it is everything that was saved.
    let both = checkpoint::load_training(&path).unwrap();
    assert!(both.has_optimizer_state());
    both.check_tensors(&tensors).unwrap();
    assert_eq!(both.metadata, metadata);

    // Without the optimizer file, the weights load alone.
    fs::rename(&optimizer, dir.path().join("aside")).unwrap();
    let alone = checkpoint::load_training(&path).unwrap();
    assert!(!alone.has_optimizer_state());
    assert_eq!(alone.tensors.len(), 2);
}

/// A save stopped at any point between its writes leaves a pair that loads: weights and the
/// optimizer state written for them. A pair mixed up by hand is refused, naming both files.
#[test]
fn a_save_stopped_between_its_files_leaves_a_matching_pair() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let optimizer = checkpoint::optimizer_path(&path);
    let staged = dir.path().join("checkpoint.optimizer-next.safetensors");
    let (first, metadata) = training_state();
    let mut second = first.clone();
    second[0].1 = Tensor::from_vec(vec![1.5f32, 2.5], &[2]).unwrap();
    second[2].1 = Tensor::from_vec(vec![0.3f32, 0.4], &[2]).unwrap();

    // The files of each save, complete.
    checkpoint::save_training(&path, &second, &metadata).unwrap();
    let (second_weights, second_optimizer) =
        (fs::read(&path).unwrap(), fs::read(&optimizer).unwrap());
    checkpoint::save_training(&path, &first, &metadata).unwrap();
    let (first_weights, first_optimizer) =
        (fs::read(&path).unwrap(), fs::read(&optimizer).unwrap());
    assert!(!staged.exists(), "a finished save leaves nothing staged");

    // The second save stopped after staging its optimizer state: the first pair loads.
    fs::write(&staged, &second_optimizer).unwrap();
    checkpoint::load_training(&path)
        .unwrap()
        .check_tensors(&first)
        .unwrap();
    // ... and after writing its weights too: the staged state is the one that matches.
    fs::write(&path, &second_weights).unwrap();
    checkpoint::load_training(&path)
        .unwrap()
        .check_tensors(&second)
        .unwrap();
    let loaded = checkpoint::load_training(&path).unwrap();
    assert_eq!(
        loaded.tensors["optim.exp_avg.w"].to_vec_f32(),
        vec![0.3, 0.4]
    );

    // Weights of one save beside the optimizer state of another, and nothing staged.
    fs::remove_file(&staged).unwrap();
    fs::write(&path, &first_weights).unwrap();
    fs::write(&optimizer, &second_optimizer).unwrap();
    let err = checkpoint::load_training(&path).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint.optimizer.safetensors")
            && err.contains("checkpoint.safetensors")
            && err.contains("move this file away"),
        "{err}"
    );
    fs::write(&optimizer, &first_optimizer).unwrap();
    checkpoint::load_training(&path).unwrap();
}

#[test]
fn a_single_file_checkpoint_of_the_older_layout_still_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let (tensors, metadata) = training_state();
    checkpoint::save(&path, &tensors, &metadata).unwrap();
    let loaded = checkpoint::load_training(&path).unwrap();
    assert!(loaded.has_optimizer_state());
    loaded.check_tensors(&tensors).unwrap();
    assert_eq!(loaded.metadata, metadata);
}
