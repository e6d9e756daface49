//! Quantized vs f32 forward passes on a full-size random-init ViT-B/16: the surgery image
//! encode at 224 px and one class's 85-prompt ensemble, for each scheme, on the CPU (burn
//! flex) and on wgpu where an adapter exists (natively: Vulkan, or lavapipe on a GPU-less
//! machine). int8/q4 weights stay quantized on the device; f16 is dequantized at load.
//! `cargo bench -p clip-cli --bench quantized`.

use burn::tensor::{Device, Tensor, TensorData};
use clip_core::config::ClipConfig;
use clip_core::input::query::Method;
use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use clip_core::surgery::explain::read_back;
use clip_core::surgery::prompts::encode_ensembles;
use clip_core::weights::pack::{MAX_SHARD_BYTES, Pack, Scheme};
use clip_core::weights::random::RandomWeights;
use criterion::{Criterion, criterion_group, criterion_main};

const TOKENIZER_JSON: &[u8] = include_bytes!("../../../www/tokenizer.json");

fn model(scheme: Scheme, device: &Device) -> Clip {
    let config = ClipConfig::vit_b_16();
    let pack = Pack::build(
        &RandomWeights::new(0),
        &config,
        scheme,
        "random",
        MAX_SHARD_BYTES,
        &mut |_, _| {},
    )
    .expect("random weights convert");
    Clip::from_pack(&pack, device).expect("pack loads")
}

fn benches(c: &mut Criterion) {
    let tokenizer = ClipTokenizer::from_bytes(TOKENIZER_JSON).expect("tokenizer");
    let mut devices = vec![("cpu", clip_core::device::cpu())];
    match pollster::block_on(clip_core::device::wgpu()) {
        Ok(device) => devices.push(("wgpu", device)),
        Err(e) => eprintln!("no wgpu benchmarks: {e}"),
    }
    let data: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
        .collect();
    for (name, device) in devices {
        let mut group = c.benchmark_group(format!("vit-b16-{name}"));
        group.sample_size(10);
        for scheme in [Scheme::F32, Scheme::Int8, Scheme::Q4] {
            let model = model(scheme, &device);
            group.bench_function(format!("{scheme}/surgery_image_encode_224"), |b| {
                b.iter(|| {
                    let pixels = Tensor::from_data(
                        TensorData::new(data.clone(), [1, 3, 224, 224]),
                        model.device(),
                    );
                    let tokens = model.encode_image(pixels, Method::Surgery).unwrap();
                    pollster::block_on(read_back(tokens)).unwrap()
                })
            });
            group.bench_function(format!("{scheme}/prompt_ensemble_85_one_class"), |b| {
                b.iter(|| {
                    let f = encode_ensembles(&model, &tokenizer, &["cat".to_string()], |_, _| {})
                        .unwrap();
                    pollster::block_on(read_back(f.features)).unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(quantized, benches);
criterion_main!(quantized);
