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
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use clip_core::config::ClipConfig;
use clip_core::device::DeviceLimits;
use clip_core::weights::tree::ClipTensors;
use clip_protocol::{DeviceChoice, DeviceKind, Response};
use js_sys::{Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::WorkerError;
use crate::post;
use crate::session::{ModelSlot, session};

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
            post(
                &Response::Device {
                    kind: active.kind,
                    note,
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

/// Asks the browser for an adapter first — burn cannot report a missing adapter without
/// aborting, and an abort kills the worker — then makes the device and registers it with burn.
async fn webgpu() -> Result<ActiveDevice, String> {
    let navigator =
        Reflect::get(&js_sys::global(), &"navigator".into()).map_err(|_| "no navigator")?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not offer WebGPU".into());
    }
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("navigator.gpu.requestAdapter is missing")?;
    let adapter = match request.call0(&gpu).map(|p| p.dyn_into::<Promise>()) {
        Ok(Ok(p)) => JsFuture::from(p).await.unwrap_or(JsValue::NULL),
        _ => JsValue::NULL,
    };
    if adapter.is_null() || adapter.is_undefined() {
        return Err("the browser has no WebGPU adapter for this page".into());
    }
    let setup = setup().await?;
    let limits = setup.device.limits();
    let max_buffer = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    watch_for_loss(&setup);
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| e.to_string())?;
    Ok(ActiveDevice {
        device,
        kind: DeviceKind::Webgpu,
        max_buffer: Some(max_buffer),
    })
}

/// A WebGPU device as burn would make it: the high-performance adapter, all its limits and
/// features (less the one browsers never expose).
async fn setup() -> Result<WgpuSetup, String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("clip-surgery"),
            required_features: adapter
                .features()
                .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            trace: wgpu::Trace::Off,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let backend = adapter.get_info().backend;
    Ok(WgpuSetup {
        instance,
        adapter,
        device,
        queue,
        backend,
    })
}

/// On the web the callback is one more handler of `GPUDevice.lost` (burn keeps its own).
fn watch_for_loss(setup: &WgpuSetup) {
    let generation = session(|s| {
        s.device_generation += 1;
        s.device_generation
    });
    setup
        .device
        .set_device_lost_callback(move |reason, message| {
            lost(generation, &format!("{reason:?}: {message}"))
        });
}

/// The GPU of `generation` is gone: drop what lived on it and tell the page.
fn lost(generation: u64, reason: &str) {
    let current = session(|s| {
        if s.device_generation != generation {
            return false; // an older device, already replaced
        }
        s.device.clear();
        s.device_lost = true;
        if let ModelSlot::Ready(model) = &s.model {
            s.model = ModelSlot::Lost(model.origin.clone());
        }
        true
    });
    if current {
        post(
            &Response::DeviceLost {
                reason: reason.to_string(),
            },
            None,
        );
    }
}

/// Bytes of wasm memory now (its high-water mark: wasm memory never shrinks).
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}
