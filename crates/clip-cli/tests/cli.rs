//! The `clip-surgery` binary reproduces the PyTorch goldens through `--json`, and the token ids
//! through `tokenize`; bad input exits non-zero with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Same bound and reasoning as the core's golden tests (`crates/clip-core/tests/common`):
/// unit-norm features, f32 summation-order noise ~1e-6, semantic errors ≥ 1e-2.
const TOL: f64 = 1e-4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

fn clip_surgery(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clip-surgery"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn golden(name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join("goldens/goldens.safetensors")).unwrap();
    let archive = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = archive.tensor(name).unwrap();
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (view.shape().to_vec(), data)
}

fn golden_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("goldens/goldens.json")).unwrap())
        .unwrap()
}

/// Compares a point list with its golden where the reference is clear of ties (see the core's
/// `POINT_MARGIN`: below a 1e-4 margin, f32 noise may legitimately swap a cell). Returns whether
/// it compared.
fn check_points(actual: &Value, golden: &Value) -> bool {
    if golden["margin"].as_f64().unwrap() < 1e-4 {
        return false;
    }
    assert_eq!(actual["xy"], golden["xy"]);
    assert_eq!(actual["positive"], golden["positive"]);
    true
}

fn explain_json(image: &str, size: &str, query: [&str; 2], out: &Path) -> Value {
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images").join(image);
    let output = clip_surgery(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        query[0],
        query[1],
        "--size",
        size,
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn assert_similarity(json: &Value, golden_name: &str, skip_cls_row: bool) {
    let (shape, expected) = golden(golden_name);
    let cols = shape[1];
    let expected = if skip_cls_row {
        &expected[cols..]
    } else {
        &expected[..]
    };
    let actual: Vec<f64> = json["similarity"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    assert_eq!(actual.len(), expected.len(), "{golden_name}");
    let diff = actual
        .iter()
        .zip(expected)
        .map(|(a, &b)| (a - f64::from(b)).abs())
        .fold(0.0, f64::max);
    assert!(diff <= TOL, "{golden_name}: max |Δ| {diff:e}");
}

#[test]
fn explain_json_reproduces_goldens() {
    let dir = std::env::temp_dir().join(format!("clip-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = golden_json();
    let labels: Vec<&str> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let labels = labels.join(",");

    // The whole path from the file: decode, our PIL-exact bicubic resize (512 → 224 here),
    // model, surgery, points in original-image pixels.
    let json = explain_json(
        "astronaut.png",
        "512",
        ["--labels", &labels],
        &dir.join("a.json"),
    );
    assert_eq!(json["grid"], serde_json::json!([32, 32]));
    assert_similarity(&json, "sim.astronaut.512.labels", true);
    let (_, cls) = golden("cls.astronaut.512");
    for (a, b) in json["cls_scores"].as_array().unwrap().iter().zip(cls) {
        assert!((a.as_f64().unwrap() - f64::from(b)).abs() <= TOL);
    }
    let mut compared = 0;
    for label in g["labels"].as_array().unwrap() {
        let label = label.as_str().unwrap();
        compared += usize::from(check_points(
            &json["points"][label],
            &g["points"]["astronaut.512"]["labels"][label],
        ));
    }
    assert!(compared >= 1);

    let json = explain_json(
        "astronaut.png",
        "224",
        ["--text", "cat"],
        &dir.join("b.json"),
    );
    assert_similarity(&json, "sim.astronaut.224.single", true);
    assert!(check_points(
        &json["points"]["cat"],
        &g["points"]["astronaut.224"]["single"]
    ));

    let json = explain_json(
        "astronaut.png",
        "224",
        ["--text", "cat+dog"],
        &dir.join("c.json"),
    );
    assert_similarity(&json, "sim.astronaut.224.combined", false);
    assert!(check_points(
        &json["points"]["cat+dog"],
        &g["points"]["astronaut.224"]["combined"]
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn explain_writes_overlays() {
    let dir = std::env::temp_dir().join(format!("clip-cli-overlay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("map.png");
    let output = clip_surgery(&[
        "explain",
        "--model",
        fixtures().join("tiny-clip").to_str().unwrap(),
        "--image",
        fixtures().join("images/coffee.png").to_str().unwrap(),
        "--labels",
        "cat,coffee cup",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let original = image::open(fixtures().join("images/coffee.png"))
        .unwrap()
        .to_rgb8();
    for name in ["map-cat.png", "map-coffee_cup.png"] {
        let overlay = image::open(dir.join(name)).unwrap().to_rgb8();
        assert_eq!(overlay.dimensions(), original.dimensions(), "{name}");
        let changed = overlay
            .pixels()
            .zip(original.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            changed > (overlay.len() / 3) / 2,
            "{name}: the heatmap covers the picture"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokenize_reproduces_reference_ids() {
    let tokens: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("goldens/tokens.json")).unwrap(),
    )
    .unwrap();
    let cases: Vec<&Value> = tokens.as_array().unwrap().iter().take(40).collect();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let mut args = vec!["tokenize"];
    args.extend(texts.iter().filter(|t| !t.starts_with('-')));
    let output = clip_surgery(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let expected: Vec<&Value> = cases
        .iter()
        .filter(|c| !c["text"].as_str().unwrap().starts_with('-'))
        .map(|c| &c["ids"])
        .collect();
    assert_eq!(ids.len(), expected.len());
    for (a, b) in ids.iter().zip(expected) {
        assert_eq!(a, b);
    }
}

#[test]
fn bad_input_exits_nonzero_with_a_message() {
    let model = fixtures().join("tiny-clip");
    let model = model.to_str().unwrap();
    let image = fixtures().join("images/astronaut-224.png");
    let image = image.to_str().unwrap();
    let not_image = fixtures().join("tiny-clip/config.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", "/nonexistent", "--image", image, "--text", "cat"],
            "nonexistent",
        ),
        (
            vec![
                "--model",
                model,
                "--image",
                not_image.to_str().unwrap(),
                "--text",
                "cat",
            ],
            "decode",
        ),
        (
            vec![
                "--model", model, "--image", image, "--text", "cat", "--size", "100",
            ],
            "multiples of the patch",
        ),
        (
            vec!["--model", model, "--image", image, "--labels", " , "],
            "nothing to explain",
        ),
        (
            vec![
                "--model", model, "--image", image, "--text", "cat", "--size", "abc",
            ],
            "--size",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["explain"];
        full.extend(args);
        let output = clip_surgery(&full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{full:?} should fail");
        assert!(stderr.contains(needle), "{full:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{full:?} panicked: {stderr}");
    }
}

fn convert(scheme: &str, to: &Path) {
    convert_with(scheme, to, &[]);
}

/// `convert` of the fixture with `extra` arguments, which must succeed.
fn convert_with(scheme: &str, to: &Path, extra: &[&str]) {
    let fixture = fixtures().join("tiny-clip");
    let mut args = vec![
        "convert",
        "--from",
        fixture.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--quant",
        scheme,
    ];
    args.extend_from_slice(extra);
    let output = clip_surgery(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn explain_pack(pack: &Path, out: &Path) -> Output {
    clip_surgery(&[
        "explain",
        "--model",
        pack.to_str().unwrap(),
        "--image",
        fixtures().join("images/astronaut.png").to_str().unwrap(),
        "--labels",
        "person,dog,sky",
        "--json",
        out.to_str().unwrap(),
    ])
}

/// `convert` writes a pack that `explain --model` reads. An f32 pack gives the checkpoint's
/// numbers (same values, re-laid out: only summation order may differ); an int8 one keeps every
/// label's map at Pearson r ≥ 0.99 (the issue's floor) with the same CLS top-1.
#[test]
fn convert_then_explain_round_trip() {
    let dir = tempdir("round-trip");
    let reference: clip_core::output::explanation::Explanation =
        serde_json::from_value(explain_json(
            "astronaut.png",
            "224",
            ["--labels", "person,dog,sky"],
            &dir.join("ref.json"),
        ))
        .unwrap();
    for scheme in ["f32", "int8"] {
        let pack = dir.join(scheme);
        convert(scheme, &pack);
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(pack.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["scheme"], scheme);
        let out = dir.join(format!("{scheme}.json"));
        let output = explain_pack(&pack, &out);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let got: clip_core::output::explanation::Explanation =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        if scheme == "f32" {
            let flat = |e: &clip_core::output::explanation::Explanation| e.similarity.concat();
            let worst = flat(&got)
                .iter()
                .zip(flat(&reference))
                .map(|(a, b)| f64::from((a - b).abs()))
                .fold(0.0, f64::max);
            assert!(worst <= TOL, "f32 pack: max |Δ| {worst}");
        }
        let agreement = reference.agreement(&got);
        assert!(
            agreement.pearson.iter().all(|&r| r >= 0.99),
            "{scheme}: {agreement:?}"
        );
        assert!(agreement.top1_agrees, "{scheme}");
    }
    // A pack is not a conversion source.
    let output = clip_surgery(&[
        "convert",
        "--from",
        dir.join("int8").to_str().unwrap(),
        "--to",
        dir.join("again").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already a weight pack"));
}

/// `convert --text-bank` ships the labels' text features with the pack (listed in the manifest
/// with their digest); `explain` on the pack uses them, refuses a corrupt bank, and a later
/// conversion without the option removes the stale file.
#[test]
fn a_packs_text_bank_is_used_checked_and_replaced() {
    use clip_core::output::explanation::Explanation;
    use clip_core::surgery::bank::StoredBank;
    use sha2::{Digest, Sha256};

    let dir = tempdir("text-bank");
    let (plain, banked) = (dir.join("plain"), dir.join("banked"));
    convert("int8", &plain);
    convert_with(
        "int8",
        &banked,
        &["--text-bank", "person, dog, sky, rocket"],
    );
    let manifest_path = banked.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let bank_bytes = std::fs::read(banked.join("text-bank.bin")).unwrap();
    assert_eq!(manifest["text_bank"]["file"], "text-bank.bin");
    assert_eq!(manifest["text_bank"]["bytes"], bank_bytes.len());
    let embed_dim = manifest["config"]["embed_dim"].as_u64().unwrap() as usize;
    let stored = StoredBank::from_bytes(&bank_bytes, embed_dim).unwrap();
    assert!(
        stored.integer,
        "an int8 pack's features come from the CPU's integer products"
    );
    let texts: Vec<&str> = stored.entries.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["person", "dog", "sky", "rocket"]);

    let run = |pack: &Path, name: &str| -> Explanation {
        let out = dir.join(name);
        let output = explain_pack(pack, &out);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    // Largest difference between two columns: encoding the labels alone or four at a time,
    // or summing them in another order, may move the last bits.
    let differ = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y).abs()))
            .fold(0.0, f64::max)
    };
    let column = |e: &Explanation, label: usize| -> Vec<f32> {
        e.similarity.iter().map(|row| row[label]).collect()
    };
    // The stored features are what encoding gives (same weights, same arithmetic).
    let encoded = run(&plain, "plain.json");
    let from_bank = run(&banked, "banked.json");
    assert!(differ(&from_bank.similarity.concat(), &encoded.similarity.concat()) <= 1e-5);

    // They are really read: a bank whose "person" and "dog" features trade places (digest
    // updated) swaps those labels' maps.
    let mut swapped = stored.clone();
    let (person, dog) = (swapped.entries[0].1.clone(), swapped.entries[1].1.clone());
    swapped.entries[0].1 = dog;
    swapped.entries[1].1 = person;
    let swapped = swapped.to_bytes();
    std::fs::write(banked.join("text-bank.bin"), &swapped).unwrap();
    manifest["text_bank"]["sha256"] = Sha256::digest(&swapped)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let forged = run(&banked, "swapped.json");
    assert!(differ(&column(&forged, 0), &column(&encoded, 1)) <= 1e-5);
    assert!(differ(&column(&forged, 0), &column(&encoded, 0)) > 1e-3);

    // A bank that does not match its digest is refused by name.
    let mut corrupt = swapped.clone();
    corrupt[40] ^= 1;
    std::fs::write(banked.join("text-bank.bin"), &corrupt).unwrap();
    let output = explain_pack(&banked, &dir.join("corrupt.json"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("text-bank.bin") && stderr.contains("SHA-256"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Converting again without a bank leaves none behind.
    convert("int8", &banked);
    assert!(!banked.join("text-bank.bin").exists());
    let again = run(&banked, "again.json");
    assert!(differ(&again.similarity.concat(), &encoded.similarity.concat()) <= 1e-5);
}

/// PASCAL VOC's 20 classes, as the app's preset names them.
const VOC: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "dining table",
    "dog",
    "horse",
    "motorbike",
    "person",
    "potted plant",
    "sheep",
    "sofa",
    "train",
    "tv monitor",
];

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// [`tempdir`] for helpers that several tests (running in parallel) call: a new folder each call.
fn fresh_tempdir(name: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tempdir(&format!("{name}-{call}"))
}

/// Each way a pack arrives broken names itself, exits non-zero, never panics.
#[test]
fn broken_packs_exit_nonzero_with_a_message() {
    let dir = tempdir("broken");
    let good = dir.join("good");
    convert("int8", &good);
    let shard = std::fs::read(good.join("shard-000.bin")).unwrap();
    let manifest = std::fs::read_to_string(good.join("manifest.json")).unwrap();
    let mut flipped = shard.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 1;
    let mut foreign = shard.clone();
    foreign[8] ^= 0xff;
    let mut missing: Value = serde_json::from_str(&manifest).unwrap();
    missing["tensors"]
        .as_object_mut()
        .unwrap()
        .remove("text_projection.weight");
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "truncated",
            manifest.clone(),
            shard[..shard.len() / 2].to_vec(),
            "truncated download",
        ),
        ("checksum", manifest.clone(), flipped, "is corrupt: SHA-256"),
        ("foreign", manifest.clone(), foreign, "belongs to model"),
        (
            "missing",
            missing.to_string(),
            shard.clone(),
            "lack tensor `text_projection.weight`",
        ),
        (
            "scheme",
            manifest.replace("\"scheme\": \"int8\"", "\"scheme\": \"int3\""),
            shard.clone(),
            "unknown quantization scheme \"int3\"",
        ),
    ];
    for (name, json, shard, needle) in cases {
        let pack = dir.join(name);
        std::fs::create_dir_all(&pack).unwrap();
        std::fs::write(pack.join("manifest.json"), json).unwrap();
        std::fs::write(pack.join("shard-000.bin"), shard).unwrap();
        let output = explain_pack(&pack, &dir.join("out.json"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} should fail");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
    }
}

/// The overlay the CLI writes for one label, computed from its own `--json` by the one rule
/// the app uses too (`Explanation::map`).
fn expected_overlay(json: &Path, image: &Path, label: usize) -> image::RgbImage {
    let explanation: clip_core::output::explanation::Explanation =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let picture = image::open(image).unwrap().to_rgb8();
    let hw = [picture.height() as usize, picture.width() as usize];
    let lut = clip_core::output::colormap::Colormap::Jet.lut();
    clip_core::output::colormap::overlay(&picture, &explanation.map(label, hw), &lut, 0.6)
}

#[test]
fn overlays_follow_the_one_map_rule_for_texts_and_labels_with_a_plus() {
    let dir = tempdir("plus");
    let image = fixtures().join("images/astronaut-224.png");
    // A text "a+b" is a combination (drawn as the mean of min-maxed maps); a label set whose
    // one label contains '+' is a label like any other (min-maxed).
    for (flag, combined) in [("--text", true), ("--labels", false)] {
        let (json, out) = (dir.join("map.json"), dir.join("map.png"));
        let output = clip_surgery(&[
            "explain",
            "--model",
            fixtures().join("tiny-clip").to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            flag,
            "person+rocket",
            "--json",
            json.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(
            written["combined"].as_bool().unwrap_or(false),
            combined,
            "{flag}"
        );
        let drawn = image::open(&out).unwrap().to_rgb8();
        assert!(
            drawn == expected_overlay(&json, &image, 0),
            "{flag}: overlay differs"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_label_given_twice_is_refused() {
    let output = clip_surgery(&[
        "explain",
        "--model",
        fixtures().join("tiny-clip").to_str().unwrap(),
        "--image",
        fixtures()
            .join("images/astronaut-224.png")
            .to_str()
            .unwrap(),
        "--labels",
        "cat, dog, cat",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"cat\" is given twice"), "{stderr}");
}

#[test]
fn quantizing_on_load_equals_loading_the_converted_pack() {
    let dir = tempdir("quant-on-load");
    let pack = dir.join("pack");
    convert("int8", &pack);
    let image = fixtures().join("images/astronaut-224.png");
    let run = |model: &Path, extra: &[&str], out: &Path| {
        let mut args = vec![
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--labels",
            "person,rocket",
            "--json",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let output = clip_surgery(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(out).unwrap()
    };
    let on_load = run(
        &fixtures().join("tiny-clip"),
        &["--quant", "int8"],
        &dir.join("a.json"),
    );
    let from_pack = run(&pack, &[], &dir.join("b.json"));
    // The same numbers and precision; only the model's name differs.
    let [mut on_load, mut from_pack] =
        [on_load, from_pack].map(|json| serde_json::from_str::<Value>(&json).unwrap());
    assert_eq!(on_load["quant"], "int8");
    for (result, name) in [(&mut on_load, "tiny-clip"), (&mut from_pack, "pack")] {
        assert_eq!(
            result.as_object_mut().unwrap().remove("model").unwrap(),
            name
        );
    }
    assert_eq!(on_load, from_pack);
    std::fs::remove_dir_all(&dir).ok();
}

fn golden_u8(name: &str) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(fixtures().join("goldens/goldens.safetensors")).unwrap();
    let archive = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = archive.tensor(name).unwrap();
    (view.shape().to_vec(), view.data().to_vec())
}

/// `segment` from the file (decode, PIL-exact resize, model, upsampling to 512×512) gives the
/// reference's mask, and its three outputs agree: the PNG's pixels are the JSON's mask, in the
/// palette the overlay draws with, and the areas are the mask's counts. The core's golden test
/// compares pixel by pixel where the scores decide by more than the tolerance and finds under
/// 2 % too close to call (0.8 % on this case); the same bound applies here.
#[test]
fn segment_reproduces_the_reference_mask_in_every_output() {
    let dir = tempdir("segment");
    let g = golden_json();
    let labels: Vec<&str> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/astronaut.png");
    let [json, mask, out] = ["seg.json", "mask.png", "overlay.png"].map(|f| dir.join(f));
    let output = clip_surgery(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--labels",
        &labels.join(","),
        "--json",
        json.to_str().unwrap(),
        "--mask",
        mask.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(json["hw"], serde_json::json!([512, 512]));
    assert_eq!(json["labels"], serde_json::json!(labels));
    let values: Vec<u8> = json["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u8::try_from(v.as_u64().unwrap()).unwrap())
        .collect();
    let (shape, expected) = golden_u8("seg.astronaut.224.cosine");
    assert_eq!(shape, vec![512, 512]);
    let differ = values.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert!(
        differ * 50 < values.len(),
        "{differ} pixels differ from the reference"
    );
    for (l, area) in json["area"].as_array().unwrap().iter().enumerate() {
        let n = values.iter().filter(|&&v| usize::from(v) == l).count();
        assert!((area.as_f64().unwrap() - n as f64 / values.len() as f64).abs() < 1e-6);
    }
    // The PNG: indexed, 8-bit, the JSON's values, the mask palette.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&mask).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (512, 512));
    assert_eq!(frame.color_type, png::ColorType::Indexed);
    assert_eq!(&pixels[..frame.buffer_size()], values.as_slice());
    let palette = reader.info().palette.as_ref().unwrap().to_vec();
    assert_eq!(&palette[..3], &[128, 0, 0]);
    assert_eq!(&palette[255 * 3..], &[224, 224, 192]);
    // The overlay: each pixel blended halfway towards its label's palette colour.
    let overlay = image::open(&out).unwrap().to_rgb8();
    let picture = image::open(&image).unwrap().to_rgb8();
    for i in [0, 1000, 131_072, 262_143] {
        let (x, y) = ((i % 512) as u32, (i / 512) as u32);
        let colour = &palette[usize::from(values[i]) * 3..usize::from(values[i]) * 3 + 3];
        let drawn = overlay.get_pixel(x, y).0;
        for ((&p, &c), &d) in picture.get_pixel(x, y).0.iter().zip(colour).zip(&drawn) {
            let blended = (f32::from(p) * 0.5 + f32::from(c) * 0.5).round();
            assert_eq!(f32::from(d), blended, "pixel {i}");
        }
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("512×512 px") && stdout.contains('%'),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// What `segment` refuses, before loading anything: never a panic.
#[test]
fn segment_refuses_bad_queries_with_a_message() {
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/astronaut-224.png");
    let many: Vec<String> = (0..256).map(|i| format!("thing {i}")).collect();
    let many = many.join(",");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--labels", "cat,dog", "--threshold", "1.5"],
            "between 0 and 1",
        ),
        (vec!["--labels", &many], "at most 255"),
        (
            vec!["--labels", "cat,sky", "--background", "sky"],
            "given twice",
        ),
        (vec!["--labels", " , "], "nothing to explain"),
        (vec!["--labels", "cat", "--opacity", "2"], "--opacity"),
        (
            vec!["--labels", "cat", "--short-side", "200"],
            "cannot slide",
        ),
        (
            vec!["--labels", "cat", "--short-side", "336", "--size", "224"],
            "--size",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec![
            "segment",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
        ];
        full.extend(args);
        let output = clip_surgery(&full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{full:?} should fail");
        assert!(stderr.contains(needle), "{full:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{full:?} panicked: {stderr}");
    }
}

/// `segment --short-side` runs the sliding-window protocol: the reference's mask for it, within
/// the same 2 % of pixels too close to call as the core's test.
#[test]
fn segment_by_sliding_windows_reproduces_the_reference() {
    let dir = tempdir("slide");
    let g = golden_json();
    let labels: Vec<&str> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let slide = &g["segmentation"]["slide"];
    let [short, window, stride] = [0, 1, 2].map(|i| slide[i].as_u64().unwrap().to_string());
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/chelsea.png");
    let json = dir.join("seg.json");
    let output = clip_surgery(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--labels",
        &labels.join(","),
        "--short-side",
        &short,
        "--window",
        &window,
        "--stride",
        &stride,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(json["hw"], serde_json::json!([300, 451]));
    let (_, expected) = golden_u8("seg.chelsea.slide");
    let values = json["mask"].as_array().unwrap();
    assert_eq!(values.len(), expected.len());
    let differ = values
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a.as_u64() != Some(u64::from(**b)))
        .count();
    assert!(
        differ * 50 < values.len(),
        "{differ} pixels differ from the reference"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `segment --json`'s mask of `image` for `labels` at 224.
fn segment_mask(image: &Path, labels: &str, dir: &Path) -> (Vec<u8>, [usize; 2]) {
    let json = dir.join("segment.json");
    let model = fixtures().join("tiny-clip");
    let output = clip_surgery(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--labels",
        labels,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mask = json["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let hw = [0, 1].map(|i| json["hw"][i].as_u64().unwrap() as usize);
    (mask, hw)
}

fn eval_seg(args: &[&str]) -> (Output, Value) {
    let (output, mut scores, text) = eval_json_text("eval-seg", args);
    // serde_json's maps sort their keys: keep the file's class order beside them.
    if let Some(per_class) = scores.get("per_class").and_then(Value::as_object) {
        let mut names: Vec<(usize, String)> = per_class
            .keys()
            .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        names.sort();
        scores["class_order"] = names.into_iter().map(|(_, k)| k).collect();
    }
    (output, scores)
}

/// mIoU, per-class IoU and pixel accuracy counted set by set — |T = c ∧ P = c| over
/// |T = c ∨ P = c| on the evaluated pixels — independently of the confusion matrix.
fn expected_scores(pairs: &[(Vec<u8>, Vec<u8>)], classes: usize) -> (Vec<Option<f64>>, f64, f64) {
    let mut iou = Vec::new();
    for c in 0..classes as u8 {
        let (mut inter, mut union) = (0u64, 0u64);
        for (truth, predicted) in pairs {
            for (&t, &p) in truth.iter().zip(predicted) {
                if t != 255 {
                    inter += u64::from(t == c && p == c);
                    union += u64::from(t == c || p == c);
                }
            }
        }
        iou.push((union > 0).then(|| inter as f64 / union as f64));
    }
    let present: Vec<f64> = iou.iter().flatten().copied().collect();
    let miou = present.iter().sum::<f64>() / present.len() as f64;
    let (mut hits, mut total) = (0u64, 0u64);
    for (truth, predicted) in pairs {
        for (&t, &p) in truth.iter().zip(predicted) {
            if t != 255 {
                hits += u64::from(t == p);
                total += 1;
            }
        }
    }
    (iou, miou, hits as f64 / total as f64)
}

fn assert_scores(
    scores: &Value,
    names: &[&str],
    expected: &(Vec<Option<f64>>, f64, f64),
    images: u64,
) {
    assert_eq!(scores["images"], images);
    assert!(
        (scores["miou"].as_f64().unwrap() - expected.1).abs() < 1e-12,
        "{scores}"
    );
    assert!(
        (scores["pixel_accuracy"].as_f64().unwrap() - expected.2).abs() < 1e-12,
        "{scores}"
    );
    let per_class = scores["per_class"].as_object().unwrap();
    assert_eq!(scores["class_order"], serde_json::json!(names));
    for (name, iou) in names.iter().zip(&expected.0) {
        match iou {
            Some(v) => assert!(
                (per_class[*name].as_f64().unwrap() - v).abs() < 1e-12,
                "{name}"
            ),
            None => assert!(per_class[*name].is_null(), "{name}"),
        }
    }
}

/// A synthetic `folder` dataset: image a's truth is `segment`'s own mask (so one image of
/// `eval-seg` equals `segment`: every present class at IoU 1), image b's truth is its mask with
/// the first row set to class 0, the last row ignored and the first column class 4 — the
/// metrics over both are counted by hand.
#[test]
fn eval_seg_on_a_folder_dataset_reproduces_hand_counted_metrics() {
    let root = tempdir("eval-seg-folder");
    let g = golden_json();
    let names: Vec<&str> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    std::fs::write(root.join("classes.txt"), names.join("\n") + "\n").unwrap();
    let mut pairs = Vec::new();
    for (id, file) in [("a", "astronaut-224.png"), ("b", "chelsea.png")] {
        let image = root.join("images").join(format!("{id}.png"));
        std::fs::copy(fixtures().join("images").join(file), &image).unwrap();
        let (predicted, [h, w]) = segment_mask(&image, &names.join(","), &root);
        let mut truth = predicted.clone();
        if id == "b" {
            truth[..w].fill(0);
            truth[(h - 1) * w..].fill(255);
            for row in 0..h - 1 {
                truth[row * w] = 4;
            }
        }
        image::GrayImage::from_raw(w as u32, h as u32, truth.clone())
            .unwrap()
            .save(root.join("masks").join(format!("{id}.png")))
            .unwrap();
        pairs.push((truth, predicted));
    }
    let root_arg = root.to_str().unwrap();
    let (output, scores) = eval_seg(&["--dataset", "folder", "--root", root_arg, "--limit", "1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_scores(
        &scores,
        &names,
        &expected_scores(&pairs[..1], names.len()),
        1,
    );
    assert_eq!(scores["miou"], 1.0);
    let (output, scores) = eval_seg(&["--dataset", "folder", "--root", root_arg]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = expected_scores(&pairs, names.len());
    assert!(
        expected.1 < 1.0 && expected.1 > 0.5,
        "the edits must cost something: {expected:?}"
    );
    assert_scores(&scores, &names, &expected, 2);
    assert!(String::from_utf8_lossy(&output.stdout).contains("mIoU"));

    // A truth of another size and a class value the dataset lacks are named, not panics.
    let mut wrong = image::GrayImage::new(10, 10);
    wrong.put_pixel(0, 0, image::Luma([3]));
    wrong.save(root.join("masks/a.png")).unwrap();
    let (output, _) = eval_seg(&["--dataset", "folder", "--root", root_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("a.png") && stderr.contains("10×10"),
        "{stderr}"
    );
    let mut bad = image::GrayImage::from_pixel(224, 224, image::Luma([0]));
    bad.put_pixel(5, 5, image::Luma([9]));
    bad.save(root.join("masks/a.png")).unwrap();
    let (output, _) = eval_seg(&["--dataset", "folder", "--root", root_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("class value 9"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    std::fs::remove_dir_all(&root).ok();
}

/// The VOC layout: ids from the split file, JPEG images, paletted truths whose value 0 is the
/// background class; predicted label i is class i + 1, and a pixel of the background rule
/// (here: the first rows, won by the background word) counts as class 0.
#[test]
fn eval_seg_reads_the_voc_layout() {
    let root = tempdir("eval-seg-voc");
    for dir in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("ImageSets/Segmentation/val.txt"), "2007_000001\n").unwrap();
    let jpeg = root.join("JPEGImages/2007_000001.jpg");
    image::open(fixtures().join("images/astronaut-224.png"))
        .unwrap()
        .to_rgb8()
        .save(&jpeg)
        .unwrap();
    let voc = VOC.to_vec();
    // What segment predicts with the same background word, as VOC class values.
    let dir = tempdir("eval-seg-voc-seg");
    let json = dir.join("s.json");
    let model = fixtures().join("tiny-clip");
    let output = clip_surgery(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--image",
        jpeg.to_str().unwrap(),
        "--labels",
        &voc.join(","),
        "--background",
        "sky",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let predicted: Vec<u8> = json["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v.as_u64().unwrap() {
            255 => 0,
            l => l as u8 + 1,
        })
        .collect();
    // Truth: the prediction, with its first 20 rows background and the next 10 ignored.
    let mut truth = predicted.clone();
    truth[..20 * 224].fill(0);
    truth[20 * 224..30 * 224].fill(255);
    let file = std::fs::File::create(root.join("SegmentationClass/2007_000001.png")).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 224, 224);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(vec![7; 256 * 3]);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&truth).unwrap();
    writer.finish().unwrap();
    let (output, scores) = eval_seg(&[
        "--dataset",
        "voc",
        "--root",
        root.to_str().unwrap(),
        "--background",
        "sky",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names = vec!["background"];
    names.extend(&voc);
    assert_scores(
        &scores,
        &names,
        &expected_scores(&[(truth, predicted)], 21),
        1,
    );
    std::fs::remove_dir_all(&root).ok();
}

/// `explain --labels --json` of `image`, parsed.
fn explanation(
    image: &Path,
    labels: &str,
    dir: &Path,
) -> clip_core::output::explanation::Explanation {
    let out = dir.join("explain.json");
    let model = fixtures().join("tiny-clip");
    let output = clip_surgery(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--labels",
        labels,
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// Runs an eval command on the tiny model with `--json` and returns its output and the parsed
/// file (`Null` when none was written).
fn eval_json(command: &str, args: &[&str]) -> (Output, Value) {
    let (output, scores, _) = eval_json_text(command, args);
    (output, scores)
}

/// [`eval_json`], and the file's text.
fn eval_json_text(command: &str, args: &[&str]) -> (Output, Value, String) {
    let dir = fresh_tempdir(&format!("{command}-out"));
    let json = dir.join("scores.json");
    let model = fixtures().join("tiny-clip");
    let mut full = vec![
        command,
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    full.extend(args);
    let output = clip_surgery(&full);
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let scores = serde_json::from_str(&text).unwrap_or(Value::Null);
    (output, scores, text)
}

/// `eval-explain` on a `folder` dataset against the metrics counted directly: for every
/// (image, present class), `explain`'s map of the class thresholded at each t (above t = the
/// class) against the class's pixels, 255 left out — IoU by counting, averaged over pairs —
/// and the contrast of the map's means. Truths: image a is split into a top half of class 1
/// and a bottom half of class 3 with an ignored row; image b is class 0 with a class-2 square.
#[test]
fn eval_explain_on_a_folder_dataset_reproduces_counted_metrics() {
    let root = tempdir("eval-explain-folder");
    let names: Vec<String> = golden_json()["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    std::fs::write(root.join("classes.txt"), names.join("\n")).unwrap();
    let mut pairs = Vec::new(); // (map, truth, class)
    for (id, file) in [("a", "astronaut-224.png"), ("b", "coffee.png")] {
        let image = root.join("images").join(format!("{id}.png"));
        std::fs::copy(fixtures().join("images").join(file), &image).unwrap();
        let (w, h) = image::image_dimensions(&image).unwrap();
        let (w, h) = (w as usize, h as usize);
        let truth: Vec<u8> = (0..h * w)
            .map(|i| {
                let (y, x) = (i / w, i % w);
                match id {
                    "a" if y == h / 2 => 255,
                    "a" if y < h / 2 => 1,
                    "a" => 3,
                    _ if (w / 4..w / 2).contains(&x) && (h / 4..h / 2).contains(&y) => 2,
                    _ => 0,
                }
            })
            .collect();
        image::GrayImage::from_raw(w as u32, h as u32, truth.clone())
            .unwrap()
            .save(root.join("masks").join(format!("{id}.png")))
            .unwrap();
        let e = explanation(&image, &names.join(","), &root);
        for class in [0u8, 1, 2, 3] {
            if truth.contains(&class) {
                pairs.push((e.map(usize::from(class), [h, w]), truth.clone(), class));
            }
        }
    }
    assert_eq!(pairs.len(), 4);
    let (output, scores) = eval_json(
        "eval-explain",
        &["--dataset", "folder", "--root", root.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(scores["pairs"], 4);
    let thresholds: Vec<f32> = (1..=19).map(|k| k as f32 / 20.0).collect();
    let miou_at: Vec<f64> = thresholds
        .iter()
        .map(|&t| {
            let ious = pairs.iter().map(|(map, truth, class)| {
                let (mut inter, mut union) = (0u64, 0u64);
                for (&v, &c) in map.iter().zip(truth) {
                    if c != 255 {
                        inter += u64::from(v > t && c == *class);
                        union += u64::from(v > t || c == *class);
                    }
                }
                inter as f64 / union as f64
            });
            ious.sum::<f64>() / pairs.len() as f64
        })
        .collect();
    let contrast = pairs.iter().map(|(map, truth, class)| {
        let mean = |inside: bool| {
            let v: Vec<f64> = map
                .iter()
                .zip(truth)
                .filter(|&(_, &c)| c != 255 && (c == *class) == inside)
                .map(|(&v, _)| f64::from(v))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        mean(true) - mean(false)
    });
    let msc = 100.0 * contrast.sum::<f64>() / pairs.len() as f64;
    for (k, &expected) in miou_at.iter().enumerate() {
        let got = scores["miou_at"][k].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-12,
            "t {}: {got} vs {expected}",
            thresholds[k]
        );
        assert_eq!(
            scores["thresholds"][k].as_f64().unwrap() as f32,
            thresholds[k]
        );
    }
    let best = miou_at.iter().copied().fold(f64::MIN, f64::max);
    assert!((scores["best_miou"].as_f64().unwrap() - best).abs() < 1e-12);
    let at = miou_at.iter().position(|&m| m == best).unwrap();
    assert_eq!(
        scores["best_threshold"].as_f64().unwrap() as f32,
        thresholds[at]
    );
    assert!(
        (scores["msc"].as_f64().unwrap() - msc).abs() < 1e-9,
        "{scores}"
    );
    // The curve is not flat: the metric sees the maps.
    assert!(best > miou_at[18] && best > 0.0, "{miou_at:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("mSC"));
    // --method raw is the baseline: other maps, other numbers.
    let (output, raw) = eval_json(
        "eval-explain",
        &[
            "--dataset",
            "folder",
            "--root",
            root.to_str().unwrap(),
            "--method",
            "raw",
        ],
    );
    assert!(output.status.success());
    assert_ne!(raw["msc"], scores["msc"]);
    std::fs::remove_dir_all(&root).ok();
}

/// Average precision counted directly (scikit-learn's rule: images by score, ties together,
/// Σ ΔR·P over the distinct scores); images whose truth is `None` left out.
fn counted_ap(scores: &[f32], truth: &[Option<bool>]) -> Option<f64> {
    let kept: Vec<(f32, bool)> = scores
        .iter()
        .zip(truth)
        .filter_map(|(&s, &t)| t.map(|t| (s, t)))
        .collect();
    let positives = kept.iter().filter(|(_, t)| *t).count();
    if positives == 0 {
        return None;
    }
    let mut distinct: Vec<f32> = kept.iter().map(|(s, _)| *s).collect();
    distinct.sort_by(|a, b| b.total_cmp(a));
    distinct.dedup();
    let (mut ap, mut previous) = (0.0, 0.0);
    for threshold in distinct {
        let above: Vec<bool> = kept
            .iter()
            .filter(|(s, _)| *s >= threshold)
            .map(|(_, t)| *t)
            .collect();
        let tp = above.iter().filter(|&&t| t).count() as f64;
        let recall = tp / positives as f64;
        ap += (recall - previous) * tp / above.len() as f64;
        previous = recall;
    }
    Some(ap)
}

/// Checks `eval-multilabel`'s JSON against APs counted from `explain`'s scores of each image.
fn assert_map(scores: &Value, classes: &[String], images: &[(PathBuf, Vec<Option<bool>>)]) {
    let dir = fresh_tempdir("multilabel-explain");
    let explained: Vec<_> = images
        .iter()
        .map(|(image, _)| explanation(image, &classes.join(","), &dir))
        .collect();
    let mut means = [vec![], vec![]];
    for (c, name) in classes.iter().enumerate() {
        let truth: Vec<Option<bool>> = images.iter().map(|(_, t)| t[c]).collect();
        let per_class = &scores["per_class"][name];
        for (k, (key, pick)) in [
            (
                "surgery",
                (|e: &clip_core::output::explanation::Explanation, c: usize| e.cls_surgery[c])
                    as fn(&_, usize) -> f32,
            ),
            ("clip", |e, c| e.cls_scores[c]),
        ]
        .into_iter()
        .enumerate()
        {
            let ranked: Vec<f32> = explained.iter().map(|e| pick(e, c)).collect();
            let expected = counted_ap(&ranked, &truth);
            match expected {
                Some(ap) => {
                    let got = per_class[key].as_f64().unwrap();
                    // The CLS token alone (eval-multilabel) and the full explanation agree to
                    // f32 rounding; an AP moves only if two images swap, far beyond that.
                    assert!((got - ap).abs() < 1e-12, "{name} {key}: {got} vs {ap}");
                    means[k].push(ap);
                }
                None => assert!(per_class[key].is_null(), "{name} {key}"),
            }
        }
        let positives = truth.iter().filter(|&&t| t == Some(true)).count();
        assert_eq!(per_class["positives"], positives as u64);
    }
    for (key, aps) in ["map_surgery", "map_clip"].iter().zip(&means) {
        let expected = aps.iter().sum::<f64>() / aps.len() as f64;
        assert!(
            (scores[key].as_f64().unwrap() - expected).abs() < 1e-12,
            "{key}"
        );
    }
    assert_eq!(scores["images"], images.len() as u64);
    std::fs::remove_dir_all(&dir).ok();
}

/// `eval-multilabel` with a labels file, and its refusals.
#[test]
fn eval_multilabel_with_a_labels_file_reproduces_counted_average_precision() {
    let root = tempdir("eval-multilabel-file");
    let classes: Vec<String> = ["person", "rocket", "cat", "cup"]
        .map(String::from)
        .to_vec();
    let files = [
        ("a.png", "astronaut-224.png", vec!["person", "rocket"]),
        ("b.png", "chelsea.png", vec!["cat"]),
        ("c.png", "coffee.png", vec!["cup"]),
        ("d.png", "astronaut.png", vec!["person"]),
    ];
    let mut listing = serde_json::Map::new();
    let mut images = Vec::new();
    for (name, source, has) in &files {
        std::fs::copy(fixtures().join("images").join(source), root.join(name)).unwrap();
        listing.insert(name.to_string(), serde_json::json!(has));
        let truth = classes
            .iter()
            .map(|c| Some(has.contains(&c.as_str())))
            .collect();
        images.push((root.join(name), truth));
    }
    let file = root.join("labels.json");
    std::fs::write(
        &file,
        serde_json::json!({"classes": classes, "images": listing}).to_string(),
    )
    .unwrap();
    let args = [
        "--images",
        root.to_str().unwrap(),
        "--labels-file",
        file.to_str().unwrap(),
    ];
    let (output, scores) = eval_json("eval-multilabel", &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_map(&scores, &classes, &images);
    assert!(String::from_utf8_lossy(&output.stdout).contains("mAP"));

    // An unknown class, a missing image and no data source are named, never panics.
    std::fs::write(
        &file,
        r#"{"classes": ["cat", "dog"], "images": {"a.png": ["cow"]}}"#,
    )
    .unwrap();
    let (output, _) = eval_json("eval-multilabel", &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("\"cow\""),
        "{stderr}"
    );
    std::fs::write(
        &file,
        r#"{"classes": ["cat", "dog"], "images": {"gone.png": ["cat"]}}"#,
    )
    .unwrap();
    let (output, _) = eval_json("eval-multilabel", &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("gone.png"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let (output, _) = eval_json("eval-multilabel", &[]);
    assert!(!output.status.success());
    std::fs::remove_dir_all(&root).ok();
}

/// The VOC, COCO and NUS-WIDE layouts read into the same images and classes (VOC's difficult
/// flag leaves an image out of that class's AP).
#[test]
fn eval_multilabel_reads_the_voc_coco_and_nus_wide_layouts() {
    let sources = ["astronaut-224.png", "chelsea.png", "coffee.png"];
    let copy = |to: &Path| {
        for (i, source) in sources.iter().enumerate() {
            image::open(fixtures().join("images").join(source))
                .unwrap()
                .to_rgb8()
                .save(to.join(format!("{i}.jpg")))
                .unwrap();
        }
    };

    // COCO: two categories with ids out of order, one image with two instances of a class.
    let root = tempdir("eval-multilabel-coco");
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    std::fs::create_dir_all(root.join("val2017")).unwrap();
    copy(&root.join("val2017"));
    let instances = serde_json::json!({
        "images": [{"id": 10, "file_name": "0.jpg"}, {"id": 11, "file_name": "1.jpg"}, {"id": 12, "file_name": "2.jpg"}],
        "annotations": [
            {"image_id": 10, "category_id": 7}, {"image_id": 10, "category_id": 7},
            {"image_id": 11, "category_id": 3}, {"image_id": 12, "category_id": 7},
        ],
        "categories": [{"id": 7, "name": "person"}, {"id": 3, "name": "cat"}],
    });
    std::fs::write(
        root.join("annotations/instances_val2017.json"),
        instances.to_string(),
    )
    .unwrap();
    let (output, scores) = eval_json(
        "eval-multilabel",
        &[
            "--dataset",
            "coco",
            "--root",
            root.to_str().unwrap(),
            "--split",
            "val2017",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let classes = vec!["cat".to_string(), "person".to_string()];
    let images: Vec<_> = [[false, true], [true, false], [false, true]]
        .iter()
        .enumerate()
        .map(|(i, t)| (root.join(format!("val2017/{i}.jpg")), t.map(Some).to_vec()))
        .collect();
    assert_map(&scores, &classes, &images);
    std::fs::remove_dir_all(&root).ok();

    // NUS-WIDE: concept lists aligned with the image list, Windows separators.
    let root = tempdir("eval-multilabel-nus");
    std::fs::create_dir_all(root.join("Flickr/actor")).unwrap();
    std::fs::create_dir_all(root.join("ImageList")).unwrap();
    std::fs::create_dir_all(root.join("Groundtruth/TrainTestLabels")).unwrap();
    copy(&root.join("Flickr/actor"));
    std::fs::write(root.join("Concepts81.txt"), "sky\nanimal\n").unwrap();
    std::fs::write(
        root.join("ImageList/TestImagelist.txt"),
        "actor\\0.jpg\nactor\\1.jpg\nactor\\2.jpg\n",
    )
    .unwrap();
    std::fs::write(
        root.join("Groundtruth/TrainTestLabels/Labels_sky_Test.txt"),
        "1\n0\n1\n",
    )
    .unwrap();
    std::fs::write(
        root.join("Groundtruth/TrainTestLabels/Labels_animal_Test.txt"),
        "0\n1\n1\n",
    )
    .unwrap();
    let (output, scores) = eval_json(
        "eval-multilabel",
        &["--dataset", "nus-wide", "--root", root.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let classes = vec!["sky".to_string(), "animal".to_string()];
    let images: Vec<_> = [[true, false], [false, true], [true, true]]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                root.join(format!("Flickr/actor/{i}.jpg")),
                t.map(Some).to_vec(),
            )
        })
        .collect();
    assert_map(&scores, &classes, &images);
    std::fs::remove_dir_all(&root).ok();

    // VOC: one list per class (20), a difficult flag, a missing list named.
    let root = tempdir("eval-multilabel-voc");
    std::fs::create_dir_all(root.join("JPEGImages")).unwrap();
    std::fs::create_dir_all(root.join("ImageSets/Main")).unwrap();
    for (i, source) in sources.iter().enumerate() {
        image::open(fixtures().join("images").join(source))
            .unwrap()
            .to_rgb8()
            .save(root.join(format!("JPEGImages/00000{i}.jpg")))
            .unwrap();
    }
    let files = [
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    ];
    let flags = |name: &str| match name {
        "person" => ["1", "-1", "0"],
        "cat" => ["-1", "1", "-1"],
        _ => ["-1", "-1", "-1"],
    };
    for name in files {
        let lines: String = flags(name)
            .iter()
            .enumerate()
            .map(|(i, f)| format!("00000{i} {f:>2}\n"))
            .collect();
        std::fs::write(root.join(format!("ImageSets/Main/{name}_test.txt")), lines).unwrap();
    }
    let (output, scores) = eval_json(
        "eval-multilabel",
        &["--dataset", "voc", "--root", root.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let classes: Vec<String> = VOC.map(String::from).to_vec();
    let images: Vec<_> = (0..3)
        .map(|i| {
            let truth = files
                .iter()
                .map(|f| match flags(f)[i] {
                    "1" => Some(true),
                    "-1" => Some(false),
                    _ => None,
                })
                .collect();
            (root.join(format!("JPEGImages/00000{i}.jpg")), truth)
        })
        .collect();
    assert_map(&scores, &classes, &images);
    assert!(scores["per_class"]["dog"]["surgery"].is_null());
    std::fs::remove_file(root.join("ImageSets/Main/cow_test.txt")).unwrap();
    let (output, _) = eval_json(
        "eval-multilabel",
        &["--dataset", "voc", "--root", root.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("cow_test.txt"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&root).ok();
}

/// `explain --text … --tokens --json` carries the multimodal view's per-token maps and scores
/// of the reference (`tokens.{case}.*`); `--tokens` with labels is refused by clap.
#[test]
fn explain_tokens_reproduce_the_reference() {
    let dir = tempdir("explain-tokens");
    let g = golden_json();
    let text = g["tokens"]["text"].as_str().unwrap();
    let out = dir.join("tokens.json");
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/astronaut.png");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--size",
            "224",
            "--json",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        clip_surgery(&args)
    };
    let output = run(&["--text", text, "--tokens"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let tokens = json["tokens"].as_array().unwrap();
    let texts = g["tokens"]["texts"].as_array().unwrap();
    let (_, similarity) = golden("tokens.astronaut.224.similarity");
    let (_, scores) = golden("tokens.astronaut.224.score");
    assert_eq!(tokens.len(), texts.len());
    let t = texts.len();
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(token["text"], texts[i]);
        let ours = token["similarity"].as_array().unwrap();
        assert_eq!(ours.len() * t, similarity.len());
        for (p, v) in ours.iter().enumerate() {
            let expected = f64::from(similarity[p * t + i]);
            assert!(
                (v.as_f64().unwrap() - expected).abs() < TOL,
                "token {i} patch {p}"
            );
        }
        assert!((token["score"].as_f64().unwrap() - f64::from(scores[i])).abs() < TOL);
    }
    // The three best tokens are marked in the summary.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('*')).count(),
        3,
        "{stdout}"
    );
    // Without --tokens nothing is added; with a label set it is refused before any work.
    let output = run(&["--text", text]);
    assert!(output.status.success());
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(json.get("tokens").is_none());
    let output = run(&["--labels", "cat,dog", "--tokens"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--text"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `explain --attention-at X,Y --block B` gives the reference's attention rows for the patch
/// under that pixel (`attention.astronaut.224`: block 7, patch [6, 4] of the 14×14 grid); a
/// pixel outside the image and a block the model lacks are refused with a message.
#[test]
fn explain_attention_rows_reproduce_the_reference() {
    let dir = tempdir("explain-attention");
    let g = golden_json();
    let spec = &g["attention"]["astronaut.224"];
    let (block, token) = (
        spec["block"].as_u64().unwrap(),
        spec["query"].as_u64().unwrap(),
    );
    let [row, col] = [(token - 1) / 14, (token - 1) % 14];
    // A pixel inside that patch of the 512-px photo (each patch covers 512/14 pixels).
    let [x, y] = [col * 512 / 14 + 10, row * 512 / 14 + 10];
    let out = dir.join("attention.json");
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/astronaut.png");
    let run = |at: &str, block: &str| {
        clip_surgery(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--labels",
            "cat,dog",
            "--attention-at",
            at,
            "--block",
            block,
            "--json",
            out.to_str().unwrap(),
        ])
    };
    let output = run(&format!("{x},{y}"), &block.to_string());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let a = &json["attention"];
    assert_eq!(a["block"], block);
    assert_eq!(a["query"], serde_json::json!([row, col]));
    let (shape, expected) = golden("attention.astronaut.224");
    let n = shape[1];
    for (key, reference) in [("qk", &expected[..n]), ("vv", &expected[n..])] {
        let ours = a[key].as_array().unwrap();
        assert_eq!(ours.len(), n);
        for (v, &r) in ours.iter().zip(reference) {
            // Probabilities near 1/197: see the core's attention test for the 1e-6.
            assert!((v.as_f64().unwrap() - f64::from(r)).abs() < 1e-6, "{key}");
        }
    }
    assert!(String::from_utf8_lossy(&output.stdout).contains("v-v at patch"));
    for (at, block, says) in [
        ("600,10", "7", "outside"),
        ("10,10", "99", "block 99"),
        ("10", "7", "X,Y"),
    ] {
        let output = run(at, block);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(says),
            "{at} {block}: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `explain --labels … --redundancy --json` carries the reference's redundancy maps
/// (`redundancy.astronaut.224.surgery`); `--redundancy` with a text is refused by clap.
#[test]
fn explain_redundancy_reproduces_the_reference() {
    let dir = tempdir("explain-redundancy");
    let g = golden_json();
    let labels: Vec<&str> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let out = dir.join("redundancy.json");
    let json = explain_json(
        "astronaut.png",
        "224",
        ["--labels", &labels.join(",")],
        &out,
    );
    assert!(json.get("redundancy").is_none());
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/astronaut.png");
    let run = |query: [&str; 2]| {
        clip_surgery(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            query[0],
            query[1],
            "--redundancy",
            "--json",
            out.to_str().unwrap(),
        ])
    };
    let output = run(["--labels", &labels.join(",")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let (_, expected) = golden("redundancy.astronaut.224.surgery");
    for (k, key) in ["empty", "term"].iter().enumerate() {
        let ours = json["redundancy"][key].as_array().unwrap();
        assert_eq!(ours.len() * 2, expected.len());
        for (p, v) in ours.iter().enumerate() {
            let reference = f64::from(expected[p * 2 + k]);
            assert!(
                (v.as_f64().unwrap() - reference).abs() < TOL,
                "{key} patch {p}"
            );
        }
    }
    let output = run(["--text", "cat"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--labels"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The other `eval-seg` layouts, each with one image where its dataset puts it and a truth in
/// its value convention: the truth is `segment`'s own prediction (as class values) with the
/// first row set to the first class and the last row ignored, written as the dataset writes it
/// (Context and ADE20K: value + 1, 0 ignored; COCO-Object: class 0 is background, label i is
/// class i + 1). The metrics are counted by hand as for the folder layout.
#[test]
fn eval_seg_reads_the_context_coco_cityscapes_and_ade_layouts() {
    use clip_core::input::presets::Preset;
    struct Case {
        layout: &'static str,
        preset: &'static str,
        image: &'static str,
        truth: &'static str,
        list: Option<&'static str>,
        zero_ignored: bool,
        background: bool,
    }
    let cases = [
        Case {
            layout: "context",
            preset: "context",
            image: "JPEGImages/2008_000001.jpg",
            truth: "SegmentationClassContext/2008_000001.png",
            list: Some("ImageSets/SegmentationContext/val.txt"),
            zero_ignored: true,
            background: false,
        },
        Case {
            layout: "coco-stuff",
            preset: "coco-stuff",
            image: "images/val2017/000000000139.jpg",
            truth: "annotations/val2017/000000000139_labelTrainIds.png",
            list: None,
            zero_ignored: false,
            background: false,
        },
        Case {
            layout: "coco-object",
            preset: "coco-object",
            image: "images/val2017/000000000139.jpg",
            truth: "annotations/val2017/000000000139_instanceTrainIds.png",
            list: None,
            zero_ignored: false,
            background: true,
        },
        Case {
            layout: "cityscapes",
            preset: "cityscapes",
            image: "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png",
            truth: "gtFine/val/lindau/lindau_000000_000019_gtFine_labelTrainIds.png",
            list: None,
            zero_ignored: false,
            background: false,
        },
        Case {
            layout: "ade",
            preset: "ade",
            image: "images/validation/ADE_val_00000001.jpg",
            truth: "annotations/validation/ADE_val_00000001.png",
            list: None,
            zero_ignored: true,
            background: false,
        },
    ];
    for case in cases {
        let root = tempdir(&format!("eval-seg-{}", case.layout));
        let image = root.join(case.image);
        let truth_file = root.join(case.truth);
        for file in [&image, &truth_file] {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        }
        if let Some(list) = case.list {
            std::fs::create_dir_all(root.join(list).parent().unwrap()).unwrap();
            std::fs::write(root.join(list), "2008_000001\n").unwrap();
        }
        image::open(fixtures().join("images/astronaut-224.png"))
            .unwrap()
            .to_rgb8()
            .save(&image)
            .unwrap();
        let labels = Preset::find(case.preset).unwrap().labels.join(",");
        let (mask, [h, w]) = segment_mask(&image, &labels, &root);
        // Class values: label i is class i (i + 1 after a background class).
        let shift = u8::from(case.background);
        let predicted: Vec<u8> = mask.iter().map(|&m| m + shift).collect();
        let mut truth = predicted.clone();
        truth[..w].fill(0);
        truth[(h - 1) * w..].fill(255);
        let written: Vec<u8> = if case.zero_ignored {
            truth
                .iter()
                .map(|&v| if v == 255 { 0 } else { v + 1 })
                .collect()
        } else {
            truth.clone()
        };
        image::GrayImage::from_raw(w as u32, h as u32, written)
            .unwrap()
            .save(&truth_file)
            .unwrap();
        let classes = Preset::find(case.preset).unwrap().labels.len() + usize::from(shift);
        let expected = expected_scores(&[(truth, predicted)], classes);
        let (output, scores) =
            eval_seg(&["--dataset", case.layout, "--root", root.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}: {}",
            case.layout,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(scores["images"], 1, "{}", case.layout);
        let miou = scores["miou"].as_f64().unwrap();
        assert!(
            (miou - expected.1).abs() < 1e-12,
            "{}: {miou} vs {}",
            case.layout,
            expected.1
        );
        assert!(
            expected.1 < 1.0,
            "{}: the edits must cost something",
            case.layout
        );
        let accuracy = scores["pixel_accuracy"].as_f64().unwrap();
        assert!((accuracy - expected.2).abs() < 1e-12, "{}", case.layout);
        assert_eq!(
            scores["per_class"].as_object().unwrap().len(),
            classes,
            "{}",
            case.layout
        );
        std::fs::remove_dir_all(&root).ok();
    }
}

/// The mtime of a file.
fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Whether two JSON documents are equal but for numbers within `tol` of each other.
fn json_close(a: &Value, b: &Value, tol: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= tol
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y, tol))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w, tol)))
        }
        _ => a == b,
    }
}

/// The docs example's results (docs/site/results) are what the batch command its page shows
/// makes from the bundled samples with the tiny fixture: re-rendered here, every file equals the
/// committed one (within 1e-6: the same code on another CPU may sum in another order; a stale
/// file differs by far more). A change to the model code that moves the maps shows up here.
#[test]
fn docs_results_are_the_batch_commands_output() {
    let dir = tempdir("docs-results");
    let labels = "person, rocket, flag, cat, cup, sky";
    let site = repo().join("docs/site/results");
    let samples = repo().join("www/samples");
    for (images, sub, method, stems) in [
        (
            samples.join("*.jpg"),
            "",
            "surgery",
            &["astronaut", "chelsea", "coffee"][..],
        ),
        (
            samples.join("astronaut.jpg"),
            "raw",
            "raw",
            &["astronaut"][..],
        ),
    ] {
        let out = dir.join(method);
        let run = Command::new(env!("CARGO_BIN_EXE_clip-surgery"))
            .current_dir(repo())
            .args(["explain", "--model", "tests/fixtures/tiny-clip", "--images"])
            .arg(&images)
            .arg("--out-dir")
            .arg(&out)
            .args(["--labels", labels, "--method", method])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let committed: Vec<String> = std::fs::read_dir(site.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        assert_eq!(committed.len(), stems.len(), "{committed:?}");
        for stem in stems {
            let read = |path: PathBuf| -> Value {
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
            };
            let ours = read(out.join(format!("{stem}.json")));
            let theirs = read(site.join(sub).join(format!("{stem}.json")));
            assert!(
                json_close(&ours, &theirs, 1e-6),
                "docs/site/results/{sub}/{stem}.json is stale: re-render it with the command on docs/site/index.html"
            );
        }
    }
}

/// `explain --images DIR --out-dir OUT`: every image's result equals `explain --image`'s
/// (same numbers, with the provenance a viewer needs), its overlays are written, a broken image
/// is an error in the index that stops neither the others nor the index; a second run skips
/// what is up to date, re-renders an image that changed, and everything when an option changes.
#[test]
fn explain_images_renders_a_folder_resumably() {
    let dir = tempdir("explain-images");
    let images = dir.join("in");
    std::fs::create_dir_all(&images).unwrap();
    for name in ["astronaut.png", "coffee.png"] {
        std::fs::copy(fixtures().join("images").join(name), images.join(name)).unwrap();
    }
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    std::fs::write(images.join("notes.txt"), b"not an image").unwrap();
    let out = dir.join("out");
    let model = fixtures().join("tiny-clip");
    let batch = |labels: &str| {
        clip_surgery(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--images",
            images.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--labels",
            labels,
        ])
    };
    let first = batch("person,rocket");
    // One image failed: the batch says so by its status, after doing the others.
    assert!(!first.status.success());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("broken.png"), "{stderr}");
    assert!(
        stderr.contains("2 rendered, 0 up to date, 1 failed of 3"),
        "{stderr}"
    );
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let entries = index["images"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["image"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["astronaut.png", "broken.png", "coffee.png"]);
    assert!(entries[1]["error"].as_str().unwrap().contains("broken.png"));
    assert!(entries[1].get("result").is_none());
    for (entry, stem) in [(&entries[0], "astronaut"), (&entries[2], "coffee")] {
        assert_eq!(entry["result"], format!("{stem}.json"));
        assert_eq!(
            entry["overlays"],
            serde_json::json!([format!("{stem}-person.png"), format!("{stem}-rocket.png")])
        );
        for overlay in entry["overlays"].as_array().unwrap() {
            let png = image::open(out.join(overlay.as_str().unwrap())).unwrap();
            let source = image::open(images.join(format!("{stem}.png"))).unwrap();
            assert_eq!(
                (png.width(), png.height()),
                (source.width(), source.height())
            );
        }
        let ours: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        let single = explain_json(
            &format!("{stem}.png"),
            "224",
            ["--labels", "person,rocket"],
            &dir.join(format!("{stem}-single.json")),
        );
        assert_eq!(
            ours, single,
            "{stem}: the batch's result is not explain --image's"
        );
        assert_eq!(ours["version"], 1);
        assert_eq!(ours["model"], "tiny-clip");
        assert_eq!(ours["quant"], "f32");
        assert_eq!(ours["method"], "surgery");
        assert_eq!(ours["image"], format!("{stem}.png"));
        assert_eq!(ours["size"], serde_json::json!([224, 224]));
        assert_eq!(ours["architecture"], "ViT-8×128/16");
    }

    // Unchanged: nothing is rendered again (the broken image is retried and fails again).
    let json = out.join("astronaut.json");
    let (astronaut, coffee) = (modified(&json), modified(&out.join("coffee.json")));
    let second = batch("person,rocket");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("0 rendered, 2 up to date, 1 failed of 3"),
        "{stderr}"
    );
    assert_eq!(modified(&json), astronaut);
    // A changed image is rendered again; the other is not.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(images.join("astronaut.png"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    std::fs::remove_file(images.join("broken.png")).unwrap();
    let third = batch("person,rocket");
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("1 rendered, 1 up to date, 0 failed of 2")
    );
    assert_ne!(modified(&json), astronaut);
    assert_eq!(modified(&out.join("coffee.json")), coffee);
    // Other labels: every image again.
    let fourth = batch("person,flag");
    assert!(
        String::from_utf8_lossy(&fourth.stderr).contains("2 rendered, 0 up to date, 0 failed of 2")
    );
    assert!(out.join("coffee-flag.png").exists());
}

/// `--images` takes a glob too, and refuses what names no image or two images with one stem.
#[test]
fn images_globs_and_refusals() {
    let dir = tempdir("images-glob");
    for name in ["astronaut.png", "chelsea-exif6.jpg", "coffee.png"] {
        std::fs::copy(fixtures().join("images").join(name), dir.join(name)).unwrap();
    }
    let model = fixtures().join("tiny-clip");
    let out = dir.join("out");
    let run = |images: &str| {
        clip_surgery(&[
            "segment",
            "--model",
            model.to_str().unwrap(),
            "--images",
            images,
            "--out-dir",
            out.to_str().unwrap(),
            "--labels",
            "person,rocket,sky",
        ])
    };
    let glob = dir.join("*.png");
    let output = run(glob.to_str().unwrap());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["astronaut.png", "coffee.png"]);
    // Each segmentation is `segment --image`'s, with its provenance; the overlay is written.
    let ours: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("coffee.json")).unwrap()).unwrap();
    let single = dir.join("single.json");
    let image = dir.join("coffee.png");
    let output = clip_surgery(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--labels",
        "person,rocket,sky",
        "--json",
        single.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let single: Value = serde_json::from_str(&std::fs::read_to_string(&single).unwrap()).unwrap();
    assert_eq!(ours, single);
    assert_eq!(ours["version"], 1);
    assert_eq!(ours["score"], "cosine");
    assert_eq!(
        index["images"][1]["overlays"],
        serde_json::json!(["coffee.png"])
    );
    assert!(image::open(out.join("coffee.png")).is_ok());

    for (images, message) in [
        (dir.join("*.gif"), "no images"),
        (dir.join("missing"), "neither a folder, a file nor a glob"),
    ] {
        let output = run(images.to_str().unwrap());
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    std::fs::copy(dir.join("coffee.png"), dir.join("coffee.jpg")).unwrap();
    let output = run(dir.to_str().unwrap());
    assert!(String::from_utf8_lossy(&output.stderr).contains("would write the same outputs"));
}
