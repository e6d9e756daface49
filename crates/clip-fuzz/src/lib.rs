//! Fuzz targets for every input a server or a user controls. Each takes arbitrary bytes and
//! must return without a panic, an abort or an unbounded allocation, whatever they hold:
//!
//! | target | input | reaches |
//! |---|---|---|
//! | [`safetensors`] | a weights file | header parse, naming, config inference, shape checks, every tensor read, the streaming converter |
//! | [`config_json`] | `config.json` | parse, validation, the tensor tree, pack sizes |
//! | [`manifest`] | `manifest.json` | parse, validation, every tensor read back through the index |
//! | [`shard`] | a shard file | length, header and checksum checks against a real manifest |
//! | [`image`] | an image file | format sniffing, decode limits, EXIF orientation, resize |
//! | [`url_params`] | the page's query string | the URL contract, model addresses and cache keys |
//!
//! `fuzz/` runs them under libFuzzer (`cargo xtask fuzz`); `tests/smoke.rs` runs each on its
//! seeds and a few thousand fixed-seed mutations in every `cargo test`.

pub mod seeds;

use std::ops::ControlFlow;
use std::sync::OnceLock;

use clip_core::config::{Activation, ClipConfig, TextConfig, TowerConfig, VisionConfig};
use clip_core::input::preprocess::{decode_image, preprocess_image};
use clip_core::weights::address::ModelAddress;
use clip_core::weights::checkpoint::Checkpoint;
use clip_core::weights::pack::{Manifest, Pack, Scheme};
use clip_core::weights::random::RandomWeights;
use clip_core::weights::source::WeightSource;
use clip_core::weights::stream::{Convert, Sink};
use clip_core::weights::tree::{ClipTensors, Role};
use clip_surgery_web::params::{Params, check_size, parse_size};

/// Inputs larger than this are not read whole (a fuzzer finds nothing new in bulk).
const MAX_MATERIALISED: u64 = 8 << 20;

/// A model small enough to build, pack and read thousands of times a second.
pub fn micro_config() -> ClipConfig {
    let tower = |width, layers| TowerConfig {
        width,
        layers,
        heads: 2,
        mlp_width: 2 * width,
        activation: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
    };
    ClipConfig {
        vision: VisionConfig {
            tower: tower(32, 2),
            patch_size: 16,
            image_size: 32,
        },
        text: TextConfig {
            tower: tower(32, 1),
            vocab_size: 64,
            context_length: 8,
        },
        embed_dim: 32,
        surgery_depth: 1,
    }
}

/// The micro model as an int8 pack in 2 KB shards (many shards, tensors across them).
pub fn micro_pack() -> &'static Pack {
    static PACK: OnceLock<Pack> = OnceLock::new();
    PACK.get_or_init(|| {
        let config = micro_config();
        Pack::build(
            &RandomWeights::new(3),
            &config,
            Scheme::Int8,
            "micro",
            2048,
            &mut |_, _| {},
        )
        .expect("the micro model packs")
    })
}

/// Reads every tensor of `config` from `source`, as the model's loaders would.
fn read_all(source: &dyn WeightSource, config: &ClipConfig) {
    for spec in ClipTensors::new(config).all() {
        let _ = match spec.role {
            Role::Matrix => source.matrix(spec).map(drop),
            Role::Table => source.table(spec).map(drop),
            Role::Float => source.float(spec).map(drop),
        };
    }
}

/// A weights file: parsed whole (both namings, config inferred or given), then streamed
/// through the converter in chunks whose sizes the input picks.
pub fn safetensors(data: &[u8]) {
    let given = data.first().is_some_and(|b| b & 1 == 1).then(micro_config);
    if let Ok(ckpt) = Checkpoint::parse(data)
        && let Ok(config) = ckpt.config(given.clone())
        && ckpt.check(&config).is_ok()
        && Scheme::F32.pack_bytes(&config) <= MAX_MATERIALISED
    {
        read_all(&ckpt, &config);
    }
    let mut converter = Convert::new(given, Scheme::Int8, "fuzz");
    converter.size(Some(data.len() as u64));
    let step = 1 + usize::from(data.get(1).copied().unwrap_or(0)) * 37;
    for chunk in data.chunks(step) {
        if converter.chunk(chunk) == ControlFlow::Break(()) {
            break;
        }
    }
    let _ = converter.finish();
}

/// A `config.json`: parsed, validated, and everything derived from it.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ClipConfig::from_hf_json(text) {
        let tree = ClipTensors::new(&config);
        assert!(!tree.all().is_empty());
        for scheme in Scheme::ALL {
            let _ = scheme.pack_bytes(&config);
        }
    }
}

/// A `manifest.json`: parsed and validated; if it passes, shards of the lengths it claims are
/// made up (opened without their header and digest checks, so that what gets tested is the
/// index itself) and every tensor is read back through it.
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = Manifest::from_bytes(data) else {
        return;
    };
    if manifest.total_bytes() > MAX_MATERIALISED {
        return;
    }
    let shards = manifest
        .shards
        .iter()
        .map(|s| vec![0x5a; s.bytes as usize])
        .collect();
    let config = manifest.config.clone();
    if let Ok(pack) = Pack::from_checked_shards(manifest, shards) {
        read_all(&pack, &config);
    }
}

/// A shard file, checked against each place of the micro pack's real manifest; one that passes
/// (the genuine shard) opens the pack.
pub fn shard(data: &[u8]) {
    let pack = micro_pack();
    for index in 0..=pack.shards.len() {
        if pack.manifest.check_shard(index, data).is_ok() {
            let mut shards = pack.shards.clone();
            shards[index] = data.to_vec();
            let pack = Pack::from_shards(pack.manifest.clone(), shards).expect("checked");
            read_all(&pack, &pack.manifest.config);
        }
    }
}

/// An image file: decoded within the limits, oriented, resized.
pub fn image(data: &[u8]) {
    if let Ok(picture) = decode_image(data) {
        let side = 16 * (1 + usize::from(data.len() as u8 % 4));
        let _ = preprocess_image(&picture, [side, side]);
    }
}

/// The page's query string (`key=value&…`, already percent-decoded by the browser): the URL
/// contract, a share link written back, and every model address it names.
pub fn url_params(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let (params, _warnings) = Params::from_pairs(pairs.iter().copied());
    let _ = Params::from_pairs(params.to_pairs());
    let _ = params.query();
    for (key, value) in &pairs {
        if let Some(size) = parse_size(value) {
            let _ = check_size(size, 16, 2048);
        }
        if *key == "model" {
            let address = ModelAddress::url(value);
            let _ = (address.manifest(), address.config(), address.weights());
            for scheme in Scheme::ALL {
                let _ = address.cache_keys(scheme);
            }
        }
    }
}
