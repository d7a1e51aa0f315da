//! One module per subcommand.

pub mod cam;
pub mod course;
pub mod deepfake;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod gradcheck;
pub mod report;
pub mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use error::Error;

#[derive(Parser)]
#[command(
    name = "ferrograd",
    version,
    about = "Reverse-mode autodiff with differentiable backward passes, and a course built on it"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Finite-difference checks of every op's derivatives at orders 1, 2 (and 3 where defined).
    Gradcheck(gradcheck::Args),
    /// Train a model on Fashion-MNIST (ae, vae, gan, aae, classifier).
    Train(train::TrainArgs),
    /// Test-set figures of a checkpoint written by `train`: losses, the VAE's importance-weighted
    /// likelihood bounds, and FID, KID, precision and recall of every sampler.
    Eval(eval::EvalArgs),
    /// The course's questions answered by measurement: the autoencoder's λ sweep, the GAN's
    /// minimax against non-saturating loss.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Class activation maps (CAM, Grad-CAM, Grad-CAM++ closed form and exact) of a classifier.
    Cam(cam::CamArgs),
    /// Face swap between two identities: train, swap, mix, eval.
    #[command(subcommand)]
    Deepfake(deepfake::DeepfakeCommand),
    /// The whole course in one run: gradient checks, the four generative models, the
    /// classifier and its maps, the face swap; writes report/index.html and report/summary.json.
    Course(course::CourseArgs),
}

/// Runs one command (the course runs its steps through here too, so each step is exactly the
/// command line its report shows).
pub fn run(command: &Command) -> Result<ExitCode, Error> {
    match command {
        Command::Gradcheck(args) => gradcheck::run(args),
        Command::Train(args) => train::run_train(args),
        Command::Eval(args) => eval::run(args),
        Command::Experiment(command) => experiment::run(command),
        Command::Cam(args) => cam::run(args),
        Command::Deepfake(command) => deepfake::run(command),
        Command::Course(args) => course::run(args),
    }
}

/// Writes to stdout; a reader that closed the pipe early (`| head`) ends the output quietly
/// instead of failing.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
