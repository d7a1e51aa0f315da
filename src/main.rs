//! The `ferrograd` command-line program.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = cli::run(&cli::Cli::parse().command);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
