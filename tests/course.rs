//! `ferrograd course` as a newcomer runs it: the report's numbers are the commands' numbers,
//! and a part whose data is missing is skipped with how to get it, the rest still running.

use std::path::Path;
use std::process::Command;

fn ferrograd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrograd"))
        .args(args)
        .env("FERROGRAD_DEVICE", "cpu")
        .output()
        .expect("the binary runs")
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json is written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// "115 checks (46 ops), 0 failed" from a gradient-check table.
fn counts(table: &str) -> (u64, u64, u64) {
    let line = table
        .lines()
        .find(|l| l.contains(" checks (") && l.contains(" failed"))
        .expect("a summary line");
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn the_report_shows_what_the_gradient_check_command_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, runs) = (tmp.path().join("report"), tmp.path().join("runs"));
    let course = ferrograd(&[
        "course",
        "--parts",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ]);
    assert!(
        course.status.success(),
        "{}",
        String::from_utf8_lossy(&course.stderr)
    );
    let direct = ferrograd(&["gradcheck", "--cases", "2"]);
    assert!(direct.status.success());
    let (checks, ops, failed) = counts(&String::from_utf8_lossy(&direct.stdout));

    let s = summary(&out);
    assert_eq!(s["every_part_ran"], true);
    let part = &s["parts"][0];
    assert_eq!(part["status"], "ran");
    assert_eq!(part["steps"][0]["command"], "ferrograd gradcheck --cases 2");
    let check = &part["figures"]["checks"][0];
    assert_eq!(
        (
            check["checks"].as_u64(),
            check["ops"].as_u64(),
            check["failed"].as_u64()
        ),
        (Some(checks), Some(ops), Some(failed))
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains(&format!("{checks} checks of {ops} ops, {failed} failed")));
}

#[test]
fn missing_data_skips_its_part_with_how_to_get_it_and_the_exit_code_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, runs) = (tmp.path().join("report"), tmp.path().join("runs"));
    let nowhere = tmp.path().join("nowhere");
    let course = ferrograd(&[
        "course",
        "--parts",
        "1,2,4",
        "--data",
        nowhere.to_str().unwrap(),
        "--faces",
        nowhere.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ]);
    assert_eq!(course.status.code(), Some(1), "not every part ran");
    let s = summary(&out);
    assert_eq!(s["every_part_ran"], false);
    let status: Vec<&str> = s["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["ran", "skipped", "skipped"]);
    let reason = |i: usize| s["parts"][i]["reason"].as_str().unwrap().to_string();
    assert!(
        reason(1).contains("apt-get install dataset-fashion-mnist"),
        "{}",
        reason(1)
    );
    assert!(
        reason(2).contains("--faces") && reason(2).contains("FERROGRAD_FACES"),
        "{}",
        reason(2)
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Skipped: Fashion-MNIST is not there"));
}

#[test]
fn an_unknown_part_is_refused() {
    let out = ferrograd(&["course", "--parts", "6"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the parts are 1, 2, 3, 4 and 5"));
}
