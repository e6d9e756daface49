//! Bad input is a typed error with a clear message — never a panic.

mod common;

use clip_core::config::ClipConfig;
use clip_core::error::ClipError;
use clip_core::input::preprocess::{decode_image, preprocess};
use clip_core::input::query::Method;
use clip_core::input::query::Query;
use clip_core::model::Clip;
use common::{fixtures, load_model, model_config};

fn weights() -> Vec<u8> {
    std::fs::read(fixtures().join("tiny-clip/model.safetensors")).unwrap()
}

fn load(bytes: &[u8], config: Option<ClipConfig>) -> Result<Clip, ClipError> {
    Clip::from_safetensors(bytes, config, &clip_core::device::cpu())
}

/// Rewrites a safetensors archive: `edit` may rename, drop or re-type tensors.
fn rewrite(
    bytes: &[u8],
    edit: impl Fn(
        &str,
        safetensors::Dtype,
        Vec<u8>,
        Vec<usize>,
    ) -> Option<(String, safetensors::Dtype, Vec<u8>, Vec<usize>)>,
) -> Vec<u8> {
    let archive = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::Dtype, Vec<u8>, Vec<usize>)> = archive
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            edit(
                &name,
                view.dtype(),
                view.data().to_vec(),
                view.shape().to_vec(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, b, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn missing_truncated_and_corrupt_weights() {
    let bytes = weights();
    let err = load(&bytes[..bytes.len() / 2], Some(model_config())).unwrap_err();
    assert!(matches!(err, ClipError::Safetensors(_)), "{err}");
    let mut corrupt = bytes.clone();
    corrupt[10..200].fill(b'#');
    assert!(matches!(
        load(&corrupt, Some(model_config())),
        Err(ClipError::Safetensors(_))
    ));
    assert!(matches!(load(b"", None), Err(ClipError::Safetensors(_))));
    let without = rewrite(&bytes, |n, d, b, s| {
        (n != "vision_model.post_layernorm.bias").then(|| (n.into(), d, b, s))
    });
    let err = load(&without, Some(model_config())).unwrap_err();
    assert!(
        matches!(&err, ClipError::MissingTensor(n) if n == "vision_model.post_layernorm.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("vision_model.post_layernorm.bias"));
}

#[test]
fn unknown_naming_is_reported_with_examples() {
    let renamed = rewrite(&weights(), |n, d, b, s| {
        Some((format!("model.{n}"), d, b, s))
    });
    let err = load(&renamed, Some(model_config())).unwrap_err();
    assert!(matches!(err, ClipError::UnknownNaming(_)), "{err}");
    assert!(err.to_string().contains("model."), "{err}");
}

#[test]
fn config_and_weights_must_agree() {
    let mut config = model_config();
    config.vision.tower.width = 256;
    config.vision.tower.heads = 4;
    let err = load(&weights(), Some(config)).unwrap_err();
    assert!(matches!(err, ClipError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
    let err = load(&weights(), None).unwrap_err();
    assert!(
        matches!(err, ClipError::Config(_)),
        "HF naming without config: {err}"
    );
}

#[test]
fn unsupported_dtype() {
    let ints = rewrite(&weights(), |n, d, b, s| {
        if n == "logit_scale" {
            Some((n.into(), safetensors::Dtype::I16, b, s))
        } else {
            Some((n.into(), d, b, s))
        }
    });
    let err = load(&ints, Some(model_config())).unwrap_err();
    assert!(
        matches!(&err, ClipError::UnsupportedDtype { name, .. } if name == "logit_scale"),
        "{err}"
    );
}

#[test]
fn f32_and_bf16_weights_load() {
    let to = |dtype: safetensors::Dtype| {
        rewrite(&weights(), move |n, _, b, s| {
            let values = b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32());
            let bytes: Vec<u8> = match dtype {
                safetensors::Dtype::F32 => values.flat_map(f32::to_le_bytes).collect(),
                _ => values
                    .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
            };
            Some((n.into(), dtype, bytes, s))
        })
    };
    let device = clip_core::device::cpu();
    let f16 = load_model(&device);
    let f32 = load(&to(safetensors::Dtype::F32), Some(model_config())).unwrap();
    // f16 → f32 is exact, so the models are identical.
    assert_eq!(
        f16.text_model.token_embedding,
        f32.text_model.token_embedding
    );
    assert_eq!(f16.logit_scale, f32.logit_scale);
    let bf16 = load(&to(safetensors::Dtype::BF16), Some(model_config())).unwrap();
    let (a, b) = (
        &f16.text_model.token_embedding.to_f32().data,
        &bf16.text_model.token_embedding.to_f32().data,
    );
    // bf16 keeps 8 mantissa bits: relative error ≤ 2⁻⁸.
    assert!(
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= x.abs() / 256.0 + 1e-30)
    );
}

#[test]
fn bad_images() {
    // A GIF header whose "size" bytes are text: refused by the decoder or by the limits.
    assert!(matches!(
        decode_image(b"GIF89a-not-really"),
        Err(ClipError::Image(_) | ClipError::ImageTooLarge(_))
    ));
    assert!(matches!(
        decode_image(b"hello, I am text"),
        Err(ClipError::Image(_))
    ));
    let png = std::fs::read(fixtures().join("images/astronaut.png")).unwrap();
    assert!(matches!(
        decode_image(&png[..png.len() / 3]),
        Err(ClipError::Image(_))
    ));
    // A header claiming 10000×10000 is refused before any pixel is allocated.
    let huge = png_header(10_000, 10_000);
    let err = decode_image(&huge).unwrap_err();
    assert!(matches!(err, ClipError::ImageTooLarge(_)), "{err}");
    let zero = png_header(0, 5);
    assert!(decode_image(&zero).is_err());
}

/// A PNG signature + IHDR (with a valid CRC) for the given size, and no pixel data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(ihdr);
    png.extend(crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn sizes_that_do_not_fit_the_patch_grid() {
    let device = clip_core::device::cpu();
    let model = load_model(&device);
    let png = std::fs::read(fixtures().join("images/astronaut-224.png")).unwrap();
    for hw in [[224, 0], [0, 224], [4096, 4096]] {
        let err = preprocess(&png, hw).unwrap_err();
        assert!(
            matches!(err, ClipError::BadInputSize { .. }),
            "{hw:?}: {err}"
        );
    }
    for hw in [[225, 224], [8, 8]] {
        let (_, pre) = preprocess(&png, hw).unwrap_or_else(|e| panic!("{hw:?}: {e}"));
        let tensor = clip_core::surgery::explain::pixels_tensor(&model, &pre);
        let err = model.encode_image(tensor, Method::Surgery).unwrap_err();
        assert!(
            matches!(err, ClipError::BadInputSize { .. }),
            "{hw:?}: {err}"
        );
    }
}

#[test]
fn empty_queries_and_overlong_prompts() {
    assert!(matches!(Query::labels(""), Err(ClipError::EmptyQuery)));
    assert!(matches!(Query::text(" + "), Err(ClipError::EmptyQuery)));
    let device = clip_core::device::cpu();
    let model = load_model(&device);
    let tok = common::tokenizer();
    let long = "word ".repeat(100);
    let out = clip_core::surgery::prompts::encode_ensembles(
        &model,
        &tok,
        std::slice::from_ref(&long),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(
        out.truncated,
        vec![long],
        "an over-long label is truncated and reported"
    );
}
