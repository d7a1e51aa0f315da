//! The same code on either device: `cargo run --example gpu` (add `FERROGRAD_DEVICE=gpu` to
//! insist on the GPU, even a software one).

use ferrograd::engine::{DType, Device, Tensor};

fn main() -> ferrograd::engine::Result<()> {
    let device = Device::from_env()?; // FERROGRAD_DEVICE, else a hardware GPU, else the CPU
    let x = Tensor::ones(&[2, 3], DType::F32)?.to(device)?;
    let y = x.exp()?.sum_all()?; // runs where x lives
    println!("{} on {}", y.item()?, device.describe());
    Ok(())
}
