//! Writes every target's seeds into `DIR/<target>/` (libFuzzer's starting corpus).

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "fuzz/corpus".into());
    for target in clip_fuzz::seeds::TARGETS {
        let out = dir.join(target);
        std::fs::create_dir_all(&out)?;
        for (i, seed) in clip_fuzz::seeds::for_target(target).iter().enumerate() {
            std::fs::write(out.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}
