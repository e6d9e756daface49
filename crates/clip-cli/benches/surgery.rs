//! CPU benchmarks on a full-size random-init ViT-B/16 (same compute as the real weights):
//! surgery image encode at 224 and 512, the 85-prompt ensemble for one class, and feature
//! surgery + maps for 59 classes at 512. `cargo bench -p clip-cli`.

use burn::tensor::{Tensor, TensorData};
use clip_core::config::ClipConfig;
use clip_core::input::query::Method;
use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use clip_core::output::maps::{column, similarity_map};
use clip_core::surgery::explain::read_back;
use clip_core::surgery::feature::feature_surgery;
use clip_core::surgery::prompts::encode_ensembles;
use criterion::{Criterion, criterion_group, criterion_main};

const TOKENIZER_JSON: &[u8] = include_bytes!("../../../www/tokenizer.json");

fn pixels(model: &Clip, side: usize) -> Tensor<4> {
    let data: Vec<f32> = (0..3 * side * side)
        .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 3, side, side]), model.device())
}

fn benches(c: &mut Criterion) {
    let device = clip_core::device::cpu();
    let model = Clip::random(ClipConfig::vit_b_16(), 0, &device).expect("random weights fit");
    let tokenizer = ClipTokenizer::from_bytes(TOKENIZER_JSON).expect("tokenizer");
    let mut group = c.benchmark_group("vit-b16-cpu");
    group.sample_size(10);
    for side in [224, 512] {
        group.bench_function(format!("surgery_image_encode_{side}"), |b| {
            b.iter(|| {
                let tokens = model
                    .encode_image(pixels(&model, side), Method::Surgery)
                    .unwrap();
                pollster::block_on(read_back(tokens)).unwrap()
            })
        });
    }
    group.bench_function("prompt_ensemble_85_one_class", |b| {
        b.iter(|| {
            let f = encode_ensembles(&model, &tokenizer, &["cat".to_string()], |_, _| {}).unwrap();
            pollster::block_on(read_back(f.features)).unwrap()
        })
    });
    // 59 PASCAL Context classes: features precomputed, as the app caches them.
    let tokens = model
        .encode_image(pixels(&model, 512), Method::Surgery)
        .unwrap();
    let [_, n, e] = tokens.dims();
    let tokens = tokens.reshape([n, e]);
    let text = clip_core::model::l2_normalize(Tensor::<2>::random(
        [59, e],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    ));
    group.bench_function("feature_surgery_and_maps_59_classes_512", |b| {
        b.iter(|| {
            let sim = pollster::block_on(read_back(feature_surgery(tokens.clone(), text.clone())))
                .unwrap();
            (0..59)
                .map(|i| similarity_map(&column(&sim[59..], 59, i), [32, 32], [512, 512]))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(surgery, benches);
criterion_main!(surgery);
