//! The `ferrograd` command-line program.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrograd",
    version,
    about = "Reverse-mode autodiff with differentiable backward passes, and a course built on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Finite-difference checks of every op's derivatives at orders 1, 2 (and 3 where defined).
    Gradcheck(cli::gradcheck::Args),
    /// Train a model on Fashion-MNIST (ae, vae, gan, aae, classifier).
    Train(cli::train::TrainArgs),
    /// Test-set figures of a checkpoint written by `train`.
    Eval(cli::train::EvalArgs),
    /// Class activation maps (CAM, Grad-CAM, Grad-CAM++ closed form and exact) of a classifier.
    Cam(cli::cam::CamArgs),
    /// Face swap between two identities: train, swap, mix, eval.
    #[command(subcommand)]
    Deepfake(cli::deepfake::DeepfakeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gradcheck(args) => cli::gradcheck::run(&args),
        Command::Train(args) => cli::train::run_train(&args),
        Command::Eval(args) => cli::train::run_eval(&args),
        Command::Cam(args) => cli::cam::run(&args),
        Command::Deepfake(command) => cli::deepfake::run(&command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
