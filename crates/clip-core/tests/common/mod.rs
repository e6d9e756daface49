//! Shared fixture access for the integration tests: the tiny model, goldens, devices.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use clip_core::config::ClipConfig;
use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use safetensors::SafeTensors;
use serde_json::Value;

/// Absolute tolerance on features, similarities and maps (f32).
///
/// Features are unit vectors and maps lie in [0, 1]. burn's and PyTorch's kernels sum in
/// different orders (blocked matmuls, tree reductions on wgpu), which across 8 blocks and a
/// min-max moves values by ~1e-6; any semantic slip — a bias on the wrong key, a transposed
/// projection, a wrong LayerNorm input — moves them by more than 1e-2. 1e-4 sits between.
pub const TOL: f32 = 1e-4;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

pub struct Goldens {
    bytes: Vec<u8>,
    pub json: Value,
}

impl Goldens {
    pub fn load() -> Self {
        let dir = fixtures().join("goldens");
        let bytes = std::fs::read(dir.join("goldens.safetensors")).expect("goldens.safetensors");
        let json = std::fs::read_to_string(dir.join("goldens.json")).expect("goldens.json");
        Self {
            bytes,
            json: serde_json::from_str(&json).expect("valid goldens.json"),
        }
    }

    fn archive(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid goldens")
    }

    /// An f32 golden: (shape, data).
    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let archive = self.archive();
        let view = archive
            .tensor(name)
            .unwrap_or_else(|_| panic!("golden {name} missing"));
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (view.shape().to_vec(), data)
    }

    /// A u8 golden: (shape, data).
    pub fn u8(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let archive = self.archive();
        let view = archive
            .tensor(name)
            .unwrap_or_else(|_| panic!("golden {name} missing"));
        (view.shape().to_vec(), view.data().to_vec())
    }

    /// A u8 `[H, W, 3]` golden as an image.
    pub fn rgb(&self, name: &str) -> image::RgbImage {
        let archive = self.archive();
        let view = archive
            .tensor(name)
            .unwrap_or_else(|_| panic!("golden {name} missing"));
        let shape = view.shape();
        image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, view.data().to_vec())
            .expect("rgb golden")
    }

    pub fn labels(&self) -> Vec<String> {
        self.json["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// (image, tag, [H, W], grid) for every case.
    pub fn cases(&self) -> Vec<(String, String, [usize; 2], [usize; 2])> {
        self.json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let pair = |v: &Value| {
                    [
                        v[0].as_u64().unwrap() as usize,
                        v[1].as_u64().unwrap() as usize,
                    ]
                };
                (
                    c["image"].as_str().unwrap().to_string(),
                    c["tag"].as_str().unwrap().to_string(),
                    pair(&c["size"]),
                    pair(&c["grid"]),
                )
            })
            .collect()
    }

    /// Original `[height, width]` of a golden image.
    pub fn image_hw(&self, image: &str) -> [usize; 2] {
        let i = &self.json["images"][image];
        [
            i["height"].as_u64().unwrap() as usize,
            i["width"].as_u64().unwrap() as usize,
        ]
    }

    pub fn image_path(&self, image: &str) -> PathBuf {
        fixtures().join(self.json["images"][image]["path"].as_str().unwrap())
    }
}

pub fn tokenizer() -> ClipTokenizer {
    let bytes = std::fs::read(repo().join("www/tokenizer.json")).expect("www/tokenizer.json");
    ClipTokenizer::from_bytes(&bytes).expect("tokenizer")
}

pub fn model_config() -> ClipConfig {
    let json = std::fs::read_to_string(fixtures().join("tiny-clip/config.json")).unwrap();
    ClipConfig::from_hf_json(&json).unwrap()
}

pub fn load_model(device: &Device) -> Clip {
    let bytes = std::fs::read(fixtures().join("tiny-clip/model.safetensors")).unwrap();
    Clip::from_safetensors(&bytes, Some(model_config()), device).expect("fixture model loads")
}

/// The devices every golden runs on: the CPU always; wgpu where an adapter exists. With
/// `CLIP_REQUIRE_WGPU=1` (set by `cargo xtask test` when lavapipe is installed) a missing
/// adapter fails the test instead of skipping it.
pub fn devices() -> Vec<(&'static str, Device)> {
    static WGPU: OnceLock<Option<Device>> = OnceLock::new();
    let wgpu = WGPU.get_or_init(|| match wgpu_device() {
        Ok(device) => Some(device),
        Err(e) => {
            assert!(
                std::env::var("CLIP_REQUIRE_WGPU").as_deref() != Ok("1"),
                "wgpu required: {e}"
            );
            eprintln!("note: skipping wgpu: {e}");
            None
        }
    });
    let mut devices = vec![("cpu", clip_core::device::cpu())];
    if let Some(device) = wgpu {
        devices.push(("wgpu", device.clone()));
    }
    devices
}

fn wgpu_device() -> Result<Device, String> {
    if std::env::var("CLIP_SKIP_WGPU").as_deref() == Ok("1") {
        return Err("CLIP_SKIP_WGPU=1".into());
    }
    pollster::block_on(clip_core::device::wgpu()).map_err(|e| e.to_string())
}

/// Max |a − b|, asserting equal lengths.
pub fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    let diff = max_abs_diff(actual, expected);
    assert!(diff <= tol, "{what}: max |Δ| = {diff:e} > {tol:e}");
}
