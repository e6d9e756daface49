//! The CLI's files: the loading pipeline's model files (paths on disk), and the mask PNG.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clip_core::output::segmentation::{Segmentation, mask_palette};
use clip_core::weights::address::ModelAddress;
use clip_core::weights::load::{FileError, LoadProgress, Loaded, ModelFiles, Origin, load};
use clip_core::weights::pack::Scheme;
use clip_core::weights::stream::Sink;

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct ReadError {
    path: PathBuf,
    source: std::io::Error,
}

impl FileError for ReadError {
    fn is_not_found(&self) -> bool {
        self.source.kind() == ErrorKind::NotFound
    }
}

/// Model files on the local disk (no cache: the files are local already).
#[derive(Debug, Default)]
pub struct LocalFiles;

/// Chunk size for streaming a file through a sink (the converter frees each tensor as it
/// completes, so reading in pieces keeps memory at the pack's size).
const CHUNK: usize = 1 << 20;

impl ModelFiles for LocalFiles {
    type Error = ReadError;

    async fn stream(
        &self,
        url: &str,
        _keep: bool,
        sink: &mut dyn Sink,
    ) -> Result<Origin, ReadError> {
        let path = Path::new(url);
        let error = |source| ReadError {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(error)?;
        let size = file.metadata().map_err(error)?.len();
        sink.size(Some(size));
        let mut buffer = vec![0; CHUNK];
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => return Ok(Origin::Source),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(error(e)),
            };
            if sink.chunk(&buffer[..n]).is_break() {
                return Ok(Origin::Source);
            }
        }
    }
}

/// The address of a model given on the command line: a pack or checkpoint directory, a
/// `manifest.json`, or one `.safetensors` file.
pub fn address(path: &Path) -> ModelAddress {
    ModelAddress::path(&path.to_string_lossy(), path.is_file())
}

/// Runs the loading pipeline on `path`: a checkpoint is quantized to `quant` on load unless
/// that is f32 (a pack keeps its own scheme).
pub fn open(
    path: &Path,
    quant: Scheme,
    progress: &mut dyn FnMut(LoadProgress<'_>),
) -> anyhow::Result<Loaded> {
    let loaded = pollster::block_on(load(&LocalFiles, &address(path), quant, progress));
    Ok(loaded?)
}

/// Writes `segmentation`'s mask as an 8-bit paletted PNG: pixel = label index, 255 =
/// background, colours from [`mask_palette`] (what the overlay and the app draw).
pub fn write_mask_png(path: &Path, segmentation: &Segmentation) -> anyhow::Result<()> {
    let [h, w] = segmentation.hw;
    let file = File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let (w, h) = (u32::try_from(w)?, u32::try_from(h)?);
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(mask_palette().concat());
    let mut writer = encoder
        .write_header()
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .write_image_data(&segmentation.mask)
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;

    struct StopAfterFirst(usize);

    impl Sink for StopAfterFirst {
        fn size(&mut self, _: Option<u64>) {}
        fn chunk(&mut self, bytes: &[u8]) -> ControlFlow<()> {
            self.0 += bytes.len();
            ControlFlow::Break(())
        }
    }

    #[test]
    fn a_sink_can_stop_the_read_and_missing_files_are_not_found() {
        let file = std::env::temp_dir().join(format!("clip-files-{}", std::process::id()));
        std::fs::write(&file, vec![7u8; 3 * CHUNK]).unwrap();
        let mut sink = StopAfterFirst(0);
        let origin =
            pollster::block_on(LocalFiles.stream(&file.to_string_lossy(), true, &mut sink));
        assert_eq!(origin.unwrap(), Origin::Source);
        assert_eq!(sink.0, CHUNK);
        std::fs::remove_file(&file).unwrap();
        let err = pollster::block_on(LocalFiles.stream(&file.to_string_lossy(), true, &mut sink))
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
