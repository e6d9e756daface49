//! Valid inputs for every target — what mutations start from. `cargo xtask fuzz` writes them
//! into libFuzzer's corpus; the smoke test mutates them with a fixed seed.

use std::io::Cursor;

use clip_core::config::ClipConfig;
use clip_core::weights::checkpoint::{Naming, write_safetensors};
use clip_core::weights::random::RandomWeights;
use safetensors::Dtype;

use crate::{micro_config, micro_pack};

/// The targets, by name.
pub const TARGETS: [&str; 6] = [
    "safetensors",
    "config_json",
    "manifest",
    "shard",
    "image",
    "url_params",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "safetensors" => crate::safetensors(data),
        "config_json" => crate::config_json(data),
        "manifest" => crate::manifest(data),
        "shard" => crate::shard(data),
        "image" => crate::image(data),
        "url_params" => crate::url_params(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// Seeds for target `name`.
pub fn for_target(name: &str) -> Vec<Vec<u8>> {
    match name {
        "safetensors" => vec![checkpoint(false), checkpoint(true)],
        "config_json" => vec![
            hf_config(&micro_config()).into_bytes(),
            hf_config(&ClipConfig::vit_b_16()).into_bytes(),
            br#"{"text_config_dict": {}, "vision_config_dict": {"patch_size": 14}}"#.to_vec(),
        ],
        "manifest" => vec![micro_pack().manifest_json().into_bytes()],
        "shard" => micro_pack().shards.clone(),
        "image" => images(),
        "url_params" => [
            "model=models/tiny&quant=q4&image=img/a.png&labels=cat,dog&size=224x320",
            "text=person+bench&method=raw&compare=1&device=cpu&colormap=viridis&opacity=0.35",
            "model=https://h.co/m/model.safetensors?download=true#x&embed=1",
            "model=packs/int8/?rev=2&labels=a,a&size=512",
        ]
        .map(|s| s.as_bytes().to_vec())
        .to_vec(),
        other => panic!("no fuzz target {other}"),
    }
}

/// The micro model as a safetensors file: Hugging Face naming, or OpenAI's (fused q/k/v,
/// transposed projections), in f16 as OpenAI releases them.
fn checkpoint(openai: bool) -> Vec<u8> {
    let naming = if openai {
        Naming::OpenAi
    } else {
        Naming::HuggingFace
    };
    write_safetensors(&RandomWeights::new(5), &micro_config(), naming, Dtype::F16)
        .expect("the micro model writes")
}

/// A Hugging Face `config.json` for `config`.
fn hf_config(c: &ClipConfig) -> String {
    let tower = |t: &clip_core::config::TowerConfig| {
        format!(
            r#""hidden_size": {}, "num_hidden_layers": {}, "num_attention_heads": {}, "intermediate_size": {}, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05"#,
            t.width, t.layers, t.heads, t.mlp_width
        )
    };
    format!(
        r#"{{"projection_dim": {}, "text_config": {{{}, "vocab_size": {}, "max_position_embeddings": {}}}, "vision_config": {{{}, "image_size": {}, "patch_size": {}}}}}"#,
        c.embed_dim,
        tower(&c.text.tower),
        c.text.vocab_size,
        c.text.context_length,
        tower(&c.vision.tower),
        c.vision.image_size,
        c.vision.patch_size
    )
}

/// A small picture in every format the app reads.
fn images() -> Vec<Vec<u8>> {
    let picture =
        image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 50, 90]));
    let picture = image::DynamicImage::ImageRgb8(picture);
    [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::WebP,
    ]
    .into_iter()
    .map(|format| {
        let mut out = Cursor::new(Vec::new());
        picture.write_to(&mut out, format).expect("encodable");
        out.into_inner()
    })
    .collect()
}
