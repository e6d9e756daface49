//! Devices for the leaves (CLI, tests, app) — the core itself only takes `&Device` — and what
//! one device can hold: the largest input it runs without an allocation failure (which, on
//! WebGPU or in wasm, would take the whole worker down instead of returning an error).

use burn::tensor::Device;
#[cfg(feature = "gpu")]
use burn::tensor::DeviceKind;

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::input::preprocess::MAX_INPUT_SIDE;

/// The CPU device (burn's `flex` backend — the one CPU backend that shares quantized schemes
/// with wgpu).
pub fn cpu() -> Device {
    Device::flex()
}

#[cfg(feature = "gpu")]
/// Initialises burn's wgpu runtime once and returns its device: the browser's WebGPU adapter
/// on wasm32, the platform GPU (or a software Vulkan such as lavapipe) natively. Tries the
/// default (high-performance) adapter, then any CPU-type adapter.
pub async fn wgpu() -> Result<Device> {
    let mut errors = Vec::new();
    for kind in [DeviceKind::DefaultDevice, DeviceKind::Cpu] {
        match Device::wgpu_options()
            .device_kind(kind.clone())
            .init_async()
            .await
        {
            Ok(device) => return Ok(device),
            Err(e) => errors.push(format!("{kind:?}: {e}")),
        }
    }
    Err(ClipError::Device(format!(
        "no wgpu adapter ({})",
        errors.join("; ")
    )))
}

/// What a device can hold, for the largest tensor an explanation creates: one block's attention
/// scores, `heads × N × N` floats for `N` tokens, which grow with the fourth power of the
/// input side (ViT-B/16 at 1024 px: 4097 tokens, 806 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// The device, in messages ("WebGPU", "the CPU").
    pub device: &'static str,
    /// Largest single buffer (WebGPU: `min(maxStorageBufferBindingSize, maxBufferSize)`).
    pub max_buffer: Option<u64>,
    /// Memory left for activations (wasm: 4 GiB of address space minus the weights). The
    /// attention step holds the scores, their softmax and a temporary at once: 3× the scores.
    pub memory: Option<u64>,
}

/// Bytes the scores of one attention take, and how many such tensors are alive at once.
const LIVE_SCORE_TENSORS: u64 = 3;

impl DeviceLimits {
    /// No limit but [`MAX_INPUT_SIDE`] (a native CPU: the operating system's memory).
    pub const NONE: Self = Self {
        device: "this device",
        max_buffer: None,
        memory: None,
    };

    /// Bytes of one block's attention scores for `tokens` tokens (`heads × N × N` f32).
    fn scores(config: &ClipConfig, tokens: u64) -> u64 {
        (config.vision.tower.heads as u64)
            .saturating_mul(tokens)
            .saturating_mul(tokens)
            .saturating_mul(4)
    }

    /// The limit `scores` bytes break, if any: `(limit, what it is)`.
    fn broken(&self, scores: u64) -> Option<(u64, &'static str)> {
        if let Some(max) = self.max_buffer.filter(|&max| scores > max) {
            return Some((max, "buffer the GPU can bind"));
        }
        self.memory
            .filter(|&memory| scores.saturating_mul(LIVE_SCORE_TENSORS) > memory)
            .map(|memory| (memory / LIVE_SCORE_TENSORS, "third of the memory left"))
    }

    /// The largest square input side (a multiple of the patch, at most [`MAX_INPUT_SIDE`])
    /// whose attention fits.
    pub fn max_side(&self, config: &ClipConfig) -> usize {
        let patch = config.vision.patch_size.max(1);
        (1..=MAX_INPUT_SIDE / patch)
            .take_while(|&g| {
                let tokens = (g * g + 1) as u64;
                self.broken(Self::scores(config, tokens)).is_none()
            })
            .last()
            .map_or(0, |g| g * patch)
    }

    /// Whether an input of `[height, width]` fits; otherwise a [`ClipError::InputTooLarge`]
    /// that names the largest square input that does.
    pub fn check(&self, config: &ClipConfig, [height, width]: [usize; 2]) -> Result<()> {
        let patch = config.vision.patch_size.max(1);
        let tokens = ((height / patch) * (width / patch) + 1) as u64;
        let scores = Self::scores(config, tokens);
        match self.broken(scores) {
            None => Ok(()),
            Some((limit, what)) => Err(ClipError::InputTooLarge {
                height,
                width,
                tokens: tokens as usize,
                need_mb: scores.div_ceil(1_000_000),
                limit_mb: limit / 1_000_000,
                what,
                device: self.device,
                max_side: self.max_side(config),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_b16_on_a_128_mib_binding_stops_at_640_px() {
        let b16 = ClipConfig::vit_b_16();
        let webgpu = DeviceLimits {
            device: "WebGPU",
            max_buffer: Some(128 << 20),
            memory: None,
        };
        // 12 heads × 1601² tokens × 4 B = 123 MB fits 134 MB; 44×44 + 1 tokens do not.
        assert_eq!(webgpu.max_side(&b16), 640);
        assert!(webgpu.check(&b16, [640, 640]).is_ok());
        let err = webgpu.check(&b16, [704, 704]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ClipError::InputTooLarge { max_side: 640, .. }),
            "{text}"
        );
        assert!(
            text.contains("640×640") && text.contains("WebGPU"),
            "{text}"
        );
        // Non-square inputs count their own tokens.
        assert!(webgpu.check(&b16, [320, 1280]).is_ok());
    }

    #[test]
    fn memory_counts_three_live_score_tensors_and_none_means_the_side_limit() {
        let b16 = ClipConfig::vit_b_16();
        let cpu = DeviceLimits {
            device: "the CPU",
            max_buffer: None,
            memory: Some(3 * 123_000_000),
        };
        assert_eq!(cpu.max_side(&b16), 624);
        assert_eq!(DeviceLimits::NONE.max_side(&b16), MAX_INPUT_SIDE);
        assert!(DeviceLimits::NONE.check(&b16, [2048, 2048]).is_ok());
    }
}
