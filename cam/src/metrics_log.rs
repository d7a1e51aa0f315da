//! The per-image log of a test-set metrics run (`metrics_images.jsonl`): every image's
//! figures, one JSON line each, appended as the run goes, so that a run of hours survives an
//! interruption (`--resume` carries on after the last whole line) and every table can be
//! recomputed from it without this program.
//!
//! Line 1 is the header: what was measured (score, curve steps, ROAD, the columns and the
//! closed-form/exact pairs, the image counts) and on which model. Each further line is one test
//! image, in test-set order: `{"index", "class", "scores": [per column: [Y, O, deletion AUC,
//! insertion AUC, ROAD MoRF, ROAD LeRF] or null], "rank_correlations": [per pair, or null],
//! "seconds": [per column]}`, ROAD's two figures null when the run skipped it.

use crate::metrics::ImageScores;
use ferrograd_engine::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

const OP: &str = "cam metrics log";

/// Where [`crate::run::test_set_metrics`] keeps its per-image log, and whether to carry on
/// from the one already there.
#[derive(Clone, Debug)]
pub struct MetricsLog {
    pub path: PathBuf,
    /// Carry on after the images the log already holds (its header must match this run's);
    /// otherwise the log starts afresh.
    pub resume: bool,
    /// Names the model, so that a log is never resumed on another one (e.g. a hash of the
    /// checkpoint file).
    pub model: String,
}

/// One map's figures on one image: the four masking figures and, when measured, ROAD's
/// (MoRF, LeRF) means over the percentiles.
pub type MapFigures = (ImageScores, Option<(f64, f64)>);

/// One image's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub index: usize,
    pub class: usize,
    /// Per column; None where the column skipped the image (the exact method past
    /// `--exact-images`).
    pub scores: Vec<Option<MapFigures>>,
    /// Per closed-form/exact pair: the two maps' rank correlation, None where the exact map
    /// was skipped.
    pub rank_correlations: Vec<Option<f64>>,
    /// Per column: seconds spent making this image's map.
    pub seconds: Vec<f64>,
}

impl ImageRecord {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "class": self.class,
            "scores": self.scores.iter().map(|s| s.as_ref().map(|(s, road)| serde_json::json!([
                s.probability,
                s.masked_probability,
                s.deletion_auc,
                s.insertion_auc,
                road.map(|r| r.0),
                road.map(|r| r.1),
            ]))).collect::<Vec<_>>(),
            "rank_correlations": self.rank_correlations,
            "seconds": self.seconds,
        })
    }

    /// Parses one line; `columns` and `pairs` are the header's counts.
    fn from_json(v: &serde_json::Value, columns: usize, pairs: usize) -> Option<ImageRecord> {
        let number = |v: &serde_json::Value| v.as_f64();
        let scores = v["scores"].as_array()?;
        let correlations = v["rank_correlations"].as_array()?;
        let seconds = v["seconds"].as_array()?;
        if scores.len() != columns || correlations.len() != pairs || seconds.len() != columns {
            return None;
        }
        let scores = scores
            .iter()
            .map(|s| {
                if s.is_null() {
                    return Some(None);
                }
                let f = s.as_array().filter(|f| f.len() == 6)?;
                let road = match (number(&f[4]), number(&f[5])) {
                    (Some(m), Some(l)) => Some((m, l)),
                    _ => None,
                };
                Some(Some((
                    ImageScores {
                        probability: number(&f[0])?,
                        masked_probability: number(&f[1])?,
                        deletion_auc: number(&f[2])?,
                        insertion_auc: number(&f[3])?,
                    },
                    road,
                )))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ImageRecord {
            index: v["index"].as_u64()? as usize,
            class: v["class"].as_u64()? as usize,
            scores,
            rank_correlations: correlations
                .iter()
                .map(|c| {
                    if c.is_null() {
                        Some(None)
                    } else {
                        number(c).map(Some)
                    }
                })
                .collect::<Option<Vec<_>>>()?,
            seconds: seconds.iter().map(number).collect::<Option<Vec<_>>>()?,
        })
    }
}

/// An open log: records are appended as they come.
pub struct LogWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl LogWriter {
    pub fn append(&mut self, records: &[ImageRecord]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&r.to_json().to_string());
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| io_error(&self.path, "cannot append to", e))
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::argument(OP, format!("{what} {}: {e}", path.display()))
}

/// Opens the log for a run with this `header`: returns the records already there (when
/// resuming) and the writer to append the rest with. A resumed log must have been written
/// with the same header (the error names the first field that differs) and hold images 0, 1,
/// 2, … in order; a last line cut short by an interruption is dropped (the file is rewritten
/// without it, through a temporary file, so nothing whole is lost).
pub fn open(
    log: &MetricsLog,
    header: &serde_json::Value,
    columns: usize,
    pairs: usize,
) -> Result<(Vec<ImageRecord>, LogWriter)> {
    let mut records = Vec::new();
    if log.resume && log.path.exists() {
        let text = std::fs::read_to_string(&log.path)
            .map_err(|e| io_error(&log.path, "cannot read", e))?;
        let mut lines = text.lines();
        let found: serde_json::Value = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| {
                Error::argument(
                    OP,
                    format!(
                        "{}: line 1 is not a header; remove the file or leave out --resume",
                        log.path.display()
                    ),
                )
            })?;
        if let Some(key) = first_difference(header, &found) {
            return Err(Error::argument(
                OP,
                format!(
                    "cannot resume {}: it was written with another '{key}' ({} there, {} now); \
                     give the same flags, or leave out --resume to start afresh",
                    log.path.display(),
                    found[key.as_str()],
                    header[key.as_str()]
                ),
            ));
        }
        let body: Vec<&str> = lines.collect();
        for (i, line) in body.iter().enumerate() {
            let parsed = serde_json::from_str(line)
                .ok()
                .and_then(|v| ImageRecord::from_json(&v, columns, pairs));
            match parsed {
                Some(r) if r.index == records.len() => records.push(r),
                // An interrupted append leaves at most its last line short.
                None if i + 1 == body.len() => break,
                _ => {
                    return Err(Error::argument(
                        OP,
                        format!(
                            "{} line {}: not the record of image {}; remove the file or leave \
                             out --resume",
                            log.path.display(),
                            i + 2,
                            records.len()
                        ),
                    ))
                }
            }
        }
    }
    let mut text = header.to_string();
    text.push('\n');
    for r in &records {
        text.push_str(&r.to_json().to_string());
        text.push('\n');
    }
    ferrograd_nn::checkpoint::write_atomically(&log.path, text.as_bytes())
        .map_err(|e| io_error(&log.path, "cannot write", e))?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log.path)
        .map_err(|e| io_error(&log.path, "cannot open", e))?;
    Ok((
        records,
        LogWriter {
            file,
            path: log.path.clone(),
        },
    ))
}

/// The first top-level key whose value differs between two headers.
fn first_difference(want: &serde_json::Value, found: &serde_json::Value) -> Option<String> {
    let keys = want.as_object()?.keys().chain(found.as_object()?.keys());
    keys.into_iter()
        .find(|k| want[k.as_str()] != found[k.as_str()])
        .cloned()
}
