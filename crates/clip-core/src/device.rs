//! Device selection helpers for the leaves (CLI, tests, app): the core itself only takes
//! `&Device`.

use burn::tensor::{Device, DeviceKind};

use crate::error::{ClipError, Result};

/// The CPU device (burn's `flex` backend — the one CPU backend that shares quantized schemes
/// with wgpu).
pub fn cpu() -> Device {
    Device::flex()
}

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
