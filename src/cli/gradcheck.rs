//! `ferrograd gradcheck`: one row per op and derivative order.

use super::Error;
use ferrograd_engine::checks::{self, OpCheck};
use ferrograd_engine::gradcheck::{run_case, run_case_on};
use ferrograd_engine::Device;
use ferrograd_models::settings::Count;
use std::process::ExitCode;
use std::time::Instant;

/// The ranges of `gradcheck`'s numeric flags.
pub mod ranges {
    use super::Count;
    pub const CASES: Count = Count::new("cases", "--cases", 1, 1000);
    /// The registry's ops go up to third derivatives.
    pub const MAX_ORDER: Count = Count::new("max_order", "--max-order", 1, 3);
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 4, help = super::train::with_range("Random cases drawn per op and order", ranges::CASES.describe()))]
    pub cases: u64,
    /// Seed of the draws; the same seed checks the same shapes and values [range: any 64-bit
    /// whole number].
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Check only these ops (repeat the flag, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub op: Vec<String>,
    #[arg(long, default_value_t = 3, help = super::train::with_range("Highest order to check (each op also has its own maximum)", ranges::MAX_ORDER.describe()))]
    pub max_order: usize,
    /// `cpu`: f64 derivatives against central differences. `gpu` (or `best` with a GPU):
    /// the same derivatives computed on the GPU in f32, against the CPU's f64 ones.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// One printed row.
pub struct Row {
    pub op: &'static str,
    pub order: usize,
    pub cases: u64,
    pub worst_ratio: f64,
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    pub failure: Option<String>,
}

/// Runs the selected checks; the rows in registry order.
pub fn check_all(args: &Args) -> Result<Vec<Row>, Error> {
    let cases = usize::try_from(args.cases).unwrap_or(usize::MAX);
    ranges::CASES.check(cases)?;
    ranges::MAX_ORDER.check(args.max_order)?;
    let device = Device::parse(&args.device)?;
    let registry = checks::all();
    let known: Vec<&str> = registry.iter().map(|c| c.op).collect();
    if let Some(bad) = args.op.iter().find(|o| !known.contains(&o.as_str())) {
        return Err(Error::usage(format!(
            "unknown op '{bad}'; the ops are: {}",
            known.join(", ")
        )));
    }
    let selected: Vec<&OpCheck> = registry
        .iter()
        .filter(|c| args.op.is_empty() || args.op.iter().any(|o| o == c.op))
        .collect();
    let mut rows = Vec::new();
    for check in selected {
        for order in 1..=check.max_order.min(args.max_order) {
            let mut row = Row {
                op: check.op,
                order,
                cases: args.cases,
                worst_ratio: 0.0,
                max_abs_error: 0.0,
                max_rel_error: 0.0,
                failure: None,
            };
            for case in 0..args.cases {
                let outcome = match device {
                    Device::Cpu => run_case(check, order, args.seed, case),
                    Device::Gpu => run_case_on(device, check, order, args.seed, case),
                };
                match outcome {
                    Ok((label, outcome)) => {
                        row.worst_ratio = row.worst_ratio.max(outcome.worst_ratio);
                        row.max_abs_error = row.max_abs_error.max(outcome.max_abs_error);
                        row.max_rel_error = row.max_rel_error.max(outcome.max_rel_error);
                        if let (None, Some(why)) = (&row.failure, outcome.failure) {
                            row.failure = Some(format!("{label}: {why}"));
                        }
                    }
                    Err(e) => {
                        row.failure
                            .get_or_insert(format!("case {case}: error: {e}"));
                    }
                }
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

pub fn run(args: &Args) -> Result<ExitCode, Error> {
    let start = Instant::now();
    let rows = check_all(args)?;
    let device = Device::parse(&args.device)?;
    crate::cli::print_stdout(&table(&rows, device, start.elapsed().as_secs_f64()))?;
    Ok(if rows.iter().all(|r| r.failure.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The printed table: one row per op and order, a summary, and each failure.
pub fn table(rows: &[Row], device: Device, seconds: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "device: {}", device.describe());
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>5} {:>13} {:>12} {:>13}  result",
        "op", "order", "cases", "worst rel err", "max |error|", "worst err/tol"
    );
    for r in rows {
        let verdict = if r.failure.is_none() { "pass" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>5} {:>13.3e} {:>12.3e} {:>13.3e}  {verdict}",
            r.op, r.order, r.cases, r.max_rel_error, r.max_abs_error, r.worst_ratio
        );
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.failure.is_some()).collect();
    let ops = rows
        .iter()
        .map(|r| r.op)
        .collect::<std::collections::BTreeSet<_>>();
    let _ = writeln!(
        out,
        "\n{} checks ({} ops), {} failed, in {seconds:.1} s.\nPass: {}, i.e. 'worst err/tol' <= 1.",
        rows.len(),
        ops.len(),
        failed.len(),
        rule(device)
    );
    for r in &failed {
        let _ = writeln!(
            out,
            "FAIL {} order {}: {}",
            r.op,
            r.order,
            r.failure.as_deref().unwrap_or("")
        );
    }
    out
}

/// The pass rule of a device's check, as the table prints it.
pub fn rule(device: Device) -> &'static str {
    match device {
        Device::Cpu => "|analytical - numerical| <= 1e-5 + 1e-3·|numerical| (eps 1e-6, f64)",
        Device::Gpu => "|gpu f32 - cpu f64| <= 1e-4·|cpu| + 1e-4·max(1, max|cpu|), on the value and every input's gradient",
    }
}
