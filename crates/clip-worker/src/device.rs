//! The device: WebGPU when the browser offers an adapter (else the CPU, and the page says so),
//! what it can hold, and what happens when the GPU goes away.
//!
//! The worker makes the WebGPU device itself and hands it to burn
//! (`Device::wgpu_options().setup(..)`), because burn's own path hides the three things needed
//! here: the limits in effect (burn requests the adapter's; a `Device` has no accessor), the
//! `GPUDevice` whose `lost` promise says the GPU is gone, and a way to start again — burn keeps
//! a lost runtime registered under its selector forever (no unregister, upstream), while every
//! registered setup gets a fresh one. After a loss the model is dropped, the page is told, and
//! the next run makes a new device and loads the weights again (from the cache).

use burn::tensor::Device;
use clip_core::config::ClipConfig;
use clip_core::device::DeviceLimits;
use clip_core::weights::tree::ClipTensors;
use clip_protocol::{DeviceChoice, DeviceKind, Response};
use js_sys::Reflect;
use wasm_bindgen::JsCast;

use crate::error::WorkerError;
use crate::post;
use crate::session::session;

#[cfg(feature = "gpu")]
mod webgpu;
#[cfg(feature = "gpu")]
use webgpu::webgpu;

/// The device in use.
#[derive(Debug, Clone)]
pub struct ActiveDevice {
    /// burn's handle.
    pub device: Device,
    /// Which kind, for the page.
    pub kind: DeviceKind,
    /// WebGPU's largest buffer: `min(maxStorageBufferBindingSize, maxBufferSize)`.
    max_buffer: Option<u64>,
}

/// Address space of wasm32: 4 GiB, whatever the machine has.
const WASM_MEMORY: u64 = 4 << 30;
/// Kept free on the CPU for everything but attention (tokens, the other activations, the
/// allocator's slack).
const CPU_MARGIN: u64 = 512 << 20;

impl ActiveDevice {
    /// What this device can hold when it runs `config`.
    pub fn limits(&self, config: &ClipConfig) -> DeviceLimits {
        match self.kind {
            DeviceKind::Webgpu => DeviceLimits {
                device: "WebGPU",
                max_buffer: self.max_buffer,
                memory: None,
            },
            DeviceKind::Cpu => {
                // The CPU backend holds every weight in f32, in the same 4 GiB as everything
                // else.
                let weights: u64 = ClipTensors::new(config)
                    .all()
                    .iter()
                    .map(|s| 4 * s.shape.iter().product::<usize>() as u64)
                    .sum();
                DeviceLimits {
                    device: "the CPU",
                    max_buffer: None,
                    memory: Some(WASM_MEMORY.saturating_sub(weights + CPU_MARGIN)),
                }
            }
        }
    }
}

fn cpu() -> ActiveDevice {
    ActiveDevice {
        device: clip_core::device::cpu(),
        kind: DeviceKind::Cpu,
        max_buffer: None,
    }
}

/// Handles `Init`: chooses the device, says which (and why, if not WebGPU).
pub async fn init(choice: DeviceChoice) -> Result<(), WorkerError> {
    session(|s| s.device_choice = choice);
    let chosen = match choice {
        DeviceChoice::Cpu => Ok((cpu(), None)),
        DeviceChoice::Webgpu => webgpu()
            .await
            .map(|d| (d, None))
            .map_err(|e| format!("WebGPU was asked for (device=webgpu) but is not available: {e}")),
        DeviceChoice::Auto => Ok(match webgpu().await {
            Ok(d) => (d, None),
            Err(e) => (
                cpu(),
                Some(format!(
                    "WebGPU is not available ({e}), so CLIP runs on the CPU — slower."
                )),
            ),
        }),
    };
    let latch = session(|s| s.device.clone());
    match chosen {
        Ok((active, note)) => {
            let (threads, single) = threads();
            let note = match (active.kind, single) {
                (DeviceKind::Cpu, Some(why)) => {
                    let why = format!("The CPU runs on one thread: {why}.");
                    Some(note.map_or(why.clone(), |n| format!("{n} {why}")))
                }
                _ => note,
            };
            post(
                &Response::Device {
                    kind: active.kind,
                    note,
                    threads: if active.kind == DeviceKind::Cpu {
                        threads
                    } else {
                        1
                    },
                },
                None,
            );
            latch.set(Ok(active));
            Ok(())
        }
        Err(message) => {
            latch.set(Err(message.clone()));
            Err(WorkerError::Device(message))
        }
    }
}

/// The device, once `Init` has chosen it; after a loss, a new one.
pub async fn ready() -> Result<ActiveDevice, WorkerError> {
    let latch = session(|s| s.device.clone());
    if latch.get().is_none() && session(|s| std::mem::take(&mut s.device_lost)) {
        // The first run after a loss chooses again (the GPU, or the CPU if it is gone for
        // good and the page allowed it); other waiters wait for that.
        let choice = session(|s| s.device_choice);
        init(choice).await?;
    }
    latch.wait().await.map_err(WorkerError::Device)
}

/// The CPU's threads, and why only one when so: what `www/worker_loader.js` found
/// (`self.clipSurgeryThreads = { count, why }`).
fn threads() -> (u32, Option<String>) {
    let info = Reflect::get(&js_sys::global(), &"clipSurgeryThreads".into()).unwrap_or_default();
    let count = Reflect::get(&info, &"count".into())
        .ok()
        .and_then(|c| c.as_f64())
        .map_or(1, |c| c.clamp(1.0, 64.0) as u32);
    let why = Reflect::get(&info, &"why".into())
        .ok()
        .and_then(|w| w.as_string());
    (count, why.filter(|_| count == 1))
}

#[cfg(not(feature = "gpu"))]
async fn webgpu() -> Result<ActiveDevice, String> {
    Err("this build of the worker is the CPU one (with threads)".into())
}

/// Bytes of wasm memory now (its high-water mark: wasm memory never shrinks).
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}
