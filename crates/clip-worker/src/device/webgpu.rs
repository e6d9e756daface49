//! WebGPU: the adapter, the device handed to burn, and what happens when the GPU goes away
//! (only in the build with the `gpu` feature).

use burn::tensor::Device;
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use clip_protocol::{DeviceKind, Response};
use js_sys::{Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::ActiveDevice;
use crate::post;
use crate::session::{ModelSlot, session};

/// Asks the browser for an adapter first — burn cannot report a missing adapter without
/// aborting, and an abort kills the worker — then makes the device and registers it with burn.
pub(super) async fn webgpu() -> Result<ActiveDevice, String> {
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
