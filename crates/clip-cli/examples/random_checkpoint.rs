//! Writes a random-init checkpoint of a preset's size in OpenAI naming (one file, config
//! inferred from the shapes), f32: the input for measuring conversion and loading at full
//! size without a download.
//!
//! `cargo run --release -p clip-cli --example random_checkpoint -- vit-b-16 /tmp/b16.safetensors`

use clip_core::config::ClipConfig;
use clip_core::weights::checkpoint::{Naming, write_safetensors};
use clip_core::weights::random::RandomWeights;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(preset), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: random_checkpoint <preset, e.g. vit-b-16> <out.safetensors>");
    };
    let config =
        ClipConfig::preset(&preset).ok_or_else(|| anyhow::anyhow!("unknown preset {preset:?}"))?;
    let bytes = write_safetensors(
        &RandomWeights::new(0),
        &config,
        Naming::OpenAi,
        safetensors::Dtype::F32,
    )?;
    std::fs::write(&out, &bytes)?;
    println!("{out}: {:.1} MB", bytes.len() as f64 / 1e6);
    Ok(())
}
