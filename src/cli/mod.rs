//! One module per subcommand.

pub mod cam;
pub mod deepfake;
pub mod gradcheck;
pub mod train;

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
