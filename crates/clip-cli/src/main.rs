//! `clip-surgery`: CLIP Surgery on the command line — explain what CLIP looks at in a picture,
//! tokenize text, on the CPU or natively on wgpu. Same core as the web app.

mod batch;
mod classification;
mod datasets;
mod files;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use classification::{ClassLayout, Labelled};
use clip_core::config::ClipConfig;
use clip_core::input::preprocess::{Preprocessed, decode_image, preprocess, preprocess_image};
use clip_core::input::query::{AttentionAt, Method, Query, split_labels};
use clip_core::input::tokenizer::ClipTokenizer;
use clip_core::model::Clip;
use clip_core::model::calibration::{self, Calibration};
use clip_core::output::colormap::{Colormap, overlay};
use clip_core::output::document::{ExplainDocument, Provenance, RESULT_VERSION, SegmentDocument};
use clip_core::output::evaluation::{Confusion, SegmentationScores};
use clip_core::output::explainability::{ExplainMetrics, ExplainScores};
use clip_core::output::explanation::Explanation;
use clip_core::output::multilabel::{MultiLabel, MultiLabelScores};
use clip_core::output::segmentation::{Segmentation, overlay_mask};
use clip_core::surgery::bank::{BANK_FILE, TextBank};
use clip_core::surgery::explain::{
    Extras, Stage, explain, explain_with, label_scores, query_texts,
};
use clip_core::surgery::segment::{Score, SegmentQuery, Slide, segment_image, segment_sliding};
use clip_core::weights::checkpoint::{Checkpoint, Naming, write_safetensors};
use clip_core::weights::load::{Found, LoadProgress, Loaded, Weights};
use clip_core::weights::pack::{MANIFEST, MAX_SHARD_BYTES, Pack, Scheme};
use clip_core::weights::random::RandomWeights;
use clip_core::weights::source::WeightSource;
use datasets::{Dataset, Layout};
use indicatif::{ProgressBar, ProgressStyle};

/// The CLIP BPE vocabulary (built by `tests/reference/make_tokenizer.py`; not a model).
const TOKENIZER_JSON: &[u8] = include_bytes!("../../../www/tokenizer.json");

#[derive(Parser)]
#[command(
    name = "clip-surgery",
    version,
    about = "Explain what CLIP looks at (CLIP Surgery, arXiv 2304.05653)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// CPU (burn flex backend).
    Cpu,
    /// wgpu: Vulkan/Metal/DX12, or a software adapter such as lavapipe.
    Wgpu,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// CLIP Surgery (architecture + feature surgery).
    Surgery,
    /// Plain CLIP similarities, for comparison.
    Raw,
}

/// The model a command runs: where it is, where it computes, at what precision.
#[derive(Args)]
struct ModelArgs {
    /// A Hugging Face CLIPModel directory (config.json + model.safetensors), an
    /// OpenAI/open_clip-named .safetensors file, or a weight pack directory (`convert`).
    #[arg(long)]
    model: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Quantize a checkpoint on load (as `convert` would, without writing the pack); a pack
    /// keeps its own scheme. f32 runs the checkpoint as it is.
    #[arg(long, default_value = "f32")]
    quant: Scheme,
}

impl ModelArgs {
    /// The model on its device.
    fn load(&self) -> Result<Model> {
        load_model(&self.model, self.quant, self.device)
    }

    /// The model's name in result files: its directory, file or pack name.
    fn name(&self) -> String {
        self.model.file_name().map_or_else(
            || self.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// What a result of `model` says produced it.
    fn provenance(&self, model: &Model, method: Method, image: &Path) -> Provenance {
        Provenance {
            version: RESULT_VERSION,
            model: self.name(),
            architecture: model.clip.config.architecture(),
            quant: model.scheme,
            method,
            image: image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

impl ModelArgs {
    /// `explanation` of `image` (whose pixels are `picture`) as a result file.
    fn document(
        &self,
        model: &Model,
        method: Method,
        image: &Path,
        input_hw: [usize; 2],
        picture: &image::RgbImage,
        explanation: Explanation,
    ) -> ExplainDocument {
        ExplainDocument {
            provenance: self.provenance(model, method, image),
            size: input_hw,
            image_hw: [picture.height() as usize, picture.width() as usize],
            explanation,
        }
    }
}

/// A loaded model: the network, its text bank, the precision its weights run at.
struct Model {
    clip: Clip,
    bank: TextBank,
    scheme: Scheme,
}

/// `explain`'s arguments.
#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The picture (png, jpeg, webp, gif).
    #[arg(long, required_unless_present = "images")]
    image: Option<PathBuf>,
    /// Every image of a folder, or of a glob such as `photos/*.jpg`, each written to
    /// --out-dir as `<name>.json` (as --json) and its overlays (as --out), with an
    /// index.json; images whose outputs are newer and made with the same options are skipped.
    #[arg(long, conflicts_with_all = ["image", "out", "json", "attention_at"], requires = "out_dir")]
    images: Option<String>,
    /// The folder of --images (created).
    #[arg(long, requires = "images")]
    out_dir: Option<PathBuf>,
    /// One text (single-text mode); "a+b" explains a combined target.
    #[arg(long, conflicts_with = "labels", required_unless_present = "labels")]
    text: Option<String>,
    /// Comma-separated label set (label-set mode).
    #[arg(long)]
    labels: Option<String>,
    /// With --text: also a map and a score per token of the text, SOT to EOT (the paper's
    /// multimodal visualisation: the tokens are the class set of feature surgery).
    #[arg(long, requires = "text")]
    tokens: bool,
    /// Also the attention row of the patch under pixel X,Y of the image (paper Fig. 1):
    /// q-k (raw CLIP's) beside v-v (CLIP Surgery's), averaged over heads.
    #[arg(long, value_name = "X,Y")]
    attention_at: Option<String>,
    /// The block of --attention-at (0-based; default: the last).
    #[arg(long, requires = "attention_at")]
    block: Option<usize>,
    /// With --labels: also what the label maps share (paper Fig. 2): the map of the empty
    /// text "" and of the term feature surgery subtracts from every class.
    #[arg(long, requires = "labels")]
    redundancy: bool,
    /// Model input size in pixels: S, or HxW (multiples of the patch size).
    #[arg(long, default_value = "224")]
    size: String,
    /// Surgery or raw CLIP.
    #[arg(long, value_enum, default_value = "surgery")]
    method: MethodArg,
    /// Write the image with the heatmap blended over it (one file per label when several:
    /// `name-<label>.png`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Colormap of --out.
    #[arg(long, default_value = "jet")]
    colormap: Colormap,
    /// Heatmap opacity of --out (the paper's figures use 0.6).
    #[arg(long, default_value_t = 0.6)]
    opacity: f32,
    /// Write the similarities, scores and points as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A tokenizer.json other than the built-in CLIP BPE.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

/// The sliding-window protocol's options (`segment`, `eval-seg`).
#[derive(Args)]
struct SlideArgs {
    /// Sliding windows instead of one input: the image's short side resized to this
    /// (aspect kept), then --window-pixel windows every --stride pixels, their scores
    /// averaged where they overlap (SCLIP's, ClearCLIP's and NACLIP's protocol).
    #[arg(long, conflicts_with = "size")]
    short_side: Option<usize>,
    /// Window side of --short-side.
    #[arg(long, default_value_t = 224, requires = "short_side")]
    window: usize,
    /// Step between windows of --short-side.
    #[arg(long, default_value_t = 112, requires = "short_side")]
    stride: usize,
}

impl SlideArgs {
    /// The windows, when --short-side asks for them.
    fn slide(&self) -> Option<Slide> {
        self.short_side.map(|short_side| Slide {
            short_side,
            window: self.window,
            stride: self.stride,
        })
    }
}

/// How `segment` and `eval-seg` score the pixels.
#[derive(Args)]
struct ScoreArgs {
    /// Surgery (v-v path tokens) or raw CLIP tokens.
    #[arg(long, value_enum, default_value = "surgery")]
    method: MethodArg,
    /// Score with feature surgery (Eq. 9) instead of the cosine. It can move the argmax:
    /// each class is weighted by its own w_k from the CLS token.
    #[arg(long)]
    feature_surgery: bool,
    /// Comma-separated background words that compete with the labels; pixels they win
    /// are background (segment: mask value 255; eval-seg: the dataset's background class).
    #[arg(long)]
    background: Option<String>,
    /// Pixels whose winner has a probability below this (softmax over labels and
    /// background words at the model's logit scale) are background.
    #[arg(long)]
    threshold: Option<f32>,
}

impl ScoreArgs {
    /// The query of `labels` under these options.
    fn query(&self, labels: Vec<String>) -> SegmentQuery {
        SegmentQuery {
            labels,
            background: self
                .background
                .as_deref()
                .map(split_labels)
                .unwrap_or_default(),
            method: self.method.into(),
            score: if self.feature_surgery {
                Score::FeatureSurgery
            } else {
                Score::Cosine
            },
            threshold: self.threshold,
        }
    }
}

/// `segment`'s arguments.
#[derive(Args)]
struct SegmentArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The picture (png, jpeg, webp, gif).
    #[arg(long, required_unless_present = "images")]
    image: Option<PathBuf>,
    /// Every image of a folder, or of a glob such as `photos/*.jpg`, each written to
    /// --out-dir as `<name>.json` (as --json) and `<name>.png` (as --out), with an
    /// index.json; images whose outputs are newer and made with the same options are skipped.
    #[arg(long, conflicts_with_all = ["image", "out", "json", "mask"], requires = "out_dir")]
    images: Option<String>,
    /// The folder of --images (created).
    #[arg(long, requires = "images")]
    out_dir: Option<PathBuf>,
    /// Comma-separated labels (at most 255); mask value i is the i-th label.
    #[arg(long)]
    labels: String,
    /// Model input size in pixels: S, or HxW (multiples of the patch size).
    #[arg(long, default_value = "224")]
    size: String,
    #[command(flatten)]
    slide: SlideArgs,
    #[command(flatten)]
    score: ScoreArgs,
    /// Write the image with each label's colour blended over its pixels.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Colour opacity of --out.
    #[arg(long, default_value_t = 0.5)]
    opacity: f32,
    /// Write the mask as a paletted PNG: pixel = label index, 255 = background.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Write labels, size, mask and areas as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A tokenizer.json other than the built-in CLIP BPE.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Similarity maps, CLS scores and Text2Points for an image and a text or label set;
    /// or, with --images and --out-dir, for every image of a folder.
    Explain(ExplainArgs),
    /// Open-vocabulary segmentation: each pixel gets the label whose patch score, upsampled
    /// to the image, is highest (the author's protocol: cosine of the surgery tokens with the
    /// labels' 85-template ensembles, no feature surgery); or, with --images and --out-dir, of
    /// every image of a folder.
    Segment(SegmentArgs),
    /// Segmentation metrics over a dataset: mIoU, per-class IoU and pixel accuracy of
    /// `segment` against the truth masks (one confusion matrix over all images, 255 ignored).
    EvalSeg {
        #[command(flatten)]
        model: ModelArgs,
        /// The dataset's directory layout.
        #[arg(long, value_enum)]
        dataset: Layout,
        /// The dataset's root directory (see the README for each layout's).
        #[arg(long)]
        root: PathBuf,
        /// Names to query instead of the dataset's class names (one a line, same order and
        /// count as the queried classes).
        #[arg(long)]
        classes: Option<PathBuf>,
        /// One input of this size: S, or HxW.
        #[arg(long, default_value = "224")]
        size: String,
        #[command(flatten)]
        slide: SlideArgs,
        /// Evaluate the first N images only.
        #[arg(long)]
        limit: Option<usize>,
        /// Write {"miou", "pixel_accuracy", "per_class": {name: iou or null}, "images"}.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        score: ScoreArgs,
    },
    /// The paper's explainability metrics over a segmentation dataset: for every image and
    /// every class in its truth, the class's similarity map (label set = the dataset's classes)
    /// thresholded at 0.05 … 0.95 against the class's pixels — mIoU per threshold and the best
    /// — and the mean score contrast (mSC).
    EvalExplain {
        #[command(flatten)]
        model: ModelArgs,
        /// The dataset's directory layout (as for `eval-seg`).
        #[arg(long, value_enum)]
        dataset: Layout,
        /// The dataset's root directory.
        #[arg(long)]
        root: PathBuf,
        /// Names to query instead of the dataset's class names (one a line).
        #[arg(long)]
        classes: Option<PathBuf>,
        /// Model input size: S, or HxW.
        #[arg(long, default_value = "224")]
        size: String,
        /// Surgery, or raw CLIP's maps as the baseline.
        #[arg(long, value_enum, default_value = "surgery")]
        method: MethodArg,
        /// Evaluate the first N images only.
        #[arg(long)]
        limit: Option<usize>,
        /// Write {"thresholds", "miou_at", "best_threshold", "best_miou", "msc", "pairs"}.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Multi-label recognition: mAP of CLIP Surgery's score (feature surgery on the CLS token)
    /// beside CLIP's softmax score, over a folder with a labels file or a VOC, COCO or
    /// NUS-WIDE layout.
    EvalMultilabel {
        #[command(flatten)]
        model: ModelArgs,
        /// The images of --labels-file (paths in it are relative to this folder).
        #[arg(long, requires = "labels_file", conflicts_with = "dataset")]
        images: Option<PathBuf>,
        /// {"classes": [names], "images": {"<path under --images>": [names it has]}}.
        #[arg(long, requires = "images")]
        labels_file: Option<PathBuf>,
        /// A standard layout instead of --images/--labels-file.
        #[arg(
            long,
            value_enum,
            requires = "root",
            required_unless_present = "images"
        )]
        dataset: Option<ClassLayout>,
        /// The dataset's root directory.
        #[arg(long)]
        root: Option<PathBuf>,
        /// The split of --dataset (VOC: test, val…; COCO: val2017…; NUS-WIDE: test, train).
        #[arg(long, default_value = "test")]
        split: String,
        /// Model input size: S, or HxW.
        #[arg(long, default_value = "224")]
        size: String,
        /// Evaluate the first N images only.
        #[arg(long)]
        limit: Option<usize>,
        /// Write {"map_surgery", "map_clip", "per_class": {name: {"surgery", "clip",
        /// "positives"}}, "images"}.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Convert a checkpoint into a weight pack for the web: ≤ 64 MB shards + manifest.json.
    Convert {
        /// A Hugging Face CLIPModel directory or an OpenAI/open_clip-named .safetensors file.
        #[arg(long)]
        from: PathBuf,
        /// Output directory (created; its manifest.json is written last, so an interrupted
        /// conversion leaves nothing loadable).
        #[arg(long)]
        to: PathBuf,
        /// f32 (sharded only), f16, int8 (blocks of 32), q4 (4-bit vision tower and token
        /// table, int8 text transformer).
        #[arg(long, default_value = "int8")]
        quant: Scheme,
        /// Comma-separated labels whose prompt-ensembled text features ship with the pack
        /// (text-bank.bin, ~2 KB a label for ViT-B): the app shows them without encoding text
        /// wherever it computes as this conversion does (the CPU's integer products for
        /// int8/q4, floats for f32/f16). The app's default labels are "person, flag, rocket,
        /// sky, ground".
        #[arg(long, value_name = "LABELS")]
        text_bank: Option<String>,
    },
    /// Quantization fidelity: Pearson r of each label's surgery similarities and CLS top-1
    /// agreement, every scheme against f32, plus pack sizes (the README's table).
    Eval {
        /// Checkpoint (as for `convert`); or `random:<preset>` (e.g. random:vit-b-16) for a
        /// random-init model of that size.
        #[arg(long)]
        model: String,
        /// Pictures to explain.
        #[arg(long, required = true, num_args = 1.., value_delimiter = ',')]
        images: Vec<PathBuf>,
        /// Comma-separated label set.
        #[arg(
            long,
            default_value = "person,dog,cat,coffee cup,sky,grass,rocket,flag"
        )]
        labels: String,
        /// Input sizes.
        #[arg(long, default_value = "224,512", value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Schemes to compare with f32.
        #[arg(long, default_value = "f16,int8,q4", value_delimiter = ',')]
        quant: Vec<Scheme>,
        /// Compute device.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Write a random-init model of a preset's size as a Hugging Face CLIPModel directory
    /// (config.json + model.safetensors, f32): a full-size model for benchmarks and
    /// conversions without a download. Its maps mean nothing; its timings are real.
    Random {
        /// Size: vit-b-16, vit-b-32, vit-l-14, vit-l-14-336.
        #[arg(long, default_value = "vit-b-16")]
        preset: String,
        /// Output directory (created).
        #[arg(long)]
        to: PathBuf,
        /// Seed of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print the 77 token ids of each text as a JSON list of lists.
    Tokenize {
        /// Texts to tokenize.
        #[arg(required = true)]
        texts: Vec<String>,
        /// A tokenizer.json other than the built-in CLIP BPE.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Tokenize { texts, tokenizer } => {
            let tokenizer = load_tokenizer(tokenizer.as_deref())?;
            let mut all = Vec::with_capacity(texts.len());
            for text in &texts {
                let t = tokenizer.encode(text)?;
                if t.truncated {
                    eprintln!("warning: {text:?} is longer than 77 tokens and was truncated");
                }
                all.push(t.ids);
            }
            println!("{}", serde_json::to_string(&all)?);
            Ok(())
        }
        Command::Convert {
            from,
            to,
            quant,
            text_bank,
        } => convert(&from, &to, quant, text_bank.as_deref()),
        Command::Random { preset, to, seed } => random(&preset, &to, seed),
        Command::Eval {
            model,
            images,
            labels,
            sizes,
            quant,
            device,
        } => eval(&model, &images, &labels, &sizes, &quant, device),
        Command::Explain(args) => explain_command(args),
        Command::EvalSeg {
            model,
            dataset,
            root,
            classes,
            size,
            slide,
            limit,
            json,
            score,
        } => {
            let dataset = Dataset::open(dataset, &root, classes.as_deref())?;
            let run = SegRun {
                query: score.query(dataset.labels.clone()),
                input_hw: parse_size(&size)?,
                slide: slide.slide(),
                limit,
            };
            let scores = eval_seg(&model, &dataset, &run)?;
            write_json(json.as_deref(), &scores)?;
            print_scores(&scores);
            Ok(())
        }
        Command::EvalExplain {
            model,
            dataset,
            root,
            classes,
            size,
            method,
            limit,
            json,
        } => {
            let dataset = Dataset::open(dataset, &root, classes.as_deref())?;
            let input_hw = parse_size(&size)?;
            let scores = eval_explain(&model, &dataset, input_hw, method.into(), limit)?;
            write_json(json.as_deref(), &scores)?;
            print_explain_scores(&scores);
            Ok(())
        }
        Command::EvalMultilabel {
            model,
            images,
            labels_file,
            dataset,
            root,
            split,
            size,
            limit,
            json,
        } => {
            let set = match (images, labels_file, dataset, root) {
                (Some(images), Some(file), _, _) => Labelled::from_file(&images, &file)?,
                (_, _, Some(layout), Some(root)) => Labelled::open(layout, &root, &split)?,
                _ => bail!("give --images and --labels-file, or --dataset and --root"),
            };
            let input_hw = parse_size(&size)?;
            let scores = eval_multilabel(&model, &set, input_hw, limit)?;
            write_json(json.as_deref(), &scores)?;
            print_multilabel(&scores);
            Ok(())
        }
        Command::Segment(args) => segment_command(args),
    }
}

/// `explain`: one image (`--image`), or every image of `--images` into `--out-dir`.
fn explain_command(a: ExplainArgs) -> Result<()> {
    let query = match (&a.text, &a.labels) {
        (Some(text), _) => Query::text(text)?,
        (None, Some(labels)) => Query::labels(labels)?,
        (None, None) => bail!("give --text or --labels"),
    };
    let input_hw = parse_size(&a.size)?;
    if !(0.0..=1.0).contains(&a.opacity) {
        bail!("--opacity must be between 0 and 1");
    }
    let tokenizer = load_tokenizer(a.tokenizer.as_deref())?;
    let method = Method::from(a.method);
    let extras = Extras {
        tokens: a.tokens,
        attention: None,
        redundancy: a.redundancy,
    };
    let (Some(spec), Some(out_dir)) = (&a.images, &a.out_dir) else {
        let image = a.image.as_deref().context("give --image or --images")?;
        return explain_image(&a, image, &query, input_hw, &tokenizer, extras);
    };
    // Everything the files depend on (not the device: CPU and wgpu agree to ~1e-6).
    let settings = serde_json::json!({
        "command": "explain",
        "result_version": RESULT_VERSION,
        "model": a.model.model,
        "quant": a.model.quant,
        "tokenizer": a.tokenizer,
        "text": a.text,
        "labels": a.labels,
        "tokens": a.tokens,
        "redundancy": a.redundancy,
        "size": input_hw,
        "method": method,
        "colormap": a.colormap.name(),
        "opacity": a.opacity,
    });
    let plan = batch::Plan::new(batch::list_images(spec)?, out_dir, settings)?;
    let mut model = None;
    if plan.pending() > 0 {
        let mut loaded = a.model.load()?;
        let (texts, _) = query_texts(&query, method, &extras);
        encode_labels(&loaded.clip, &tokenizer, &mut loaded.bank, &texts)?;
        model = Some(loaded);
    }
    plan.run("explaining images", |image, base| {
        let model = model.as_mut().context("the model is not loaded")?;
        let (picture, pre) = read_image(image, input_hw)?;
        let explanation = pollster::block_on(explain_with(
            &model.clip,
            &tokenizer,
            &pre,
            &query,
            method,
            &mut model.bank,
            extras,
            |_| {},
        ))?;
        let document = a
            .model
            .document(model, method, image, input_hw, &picture, explanation);
        let result = with_suffix(base, ".json");
        write_json(Some(&result), &document)?;
        let png = with_suffix(base, ".png");
        let overlays =
            write_overlays(&png, &picture, &document.explanation, a.colormap, a.opacity)?;
        Ok(batch::Outputs { result, overlays })
    })
}

/// `explain --image`: one image, its summary printed, its files where asked.
fn explain_image(
    a: &ExplainArgs,
    image: &Path,
    query: &Query,
    input_hw: [usize; 2],
    tokenizer: &ClipTokenizer,
    mut extras: Extras,
) -> Result<()> {
    let method = Method::from(a.method);
    let (picture, pre) = read_image(image, input_hw)?;
    let at = a.attention_at.as_deref().map(parse_point).transpose()?;
    let mut model = a.model.load()?;
    if let Some(xy) = at {
        extras.attention = Some(attention_query(&model.clip, &pre, xy, a.block)?);
    }
    let bar = stage_bar();
    let explanation = pollster::block_on(explain_with(
        &model.clip,
        tokenizer,
        &pre,
        query,
        method,
        &mut model.bank,
        extras,
        stage_progress(&bar, "maps and points"),
    ));
    bar.finish_and_clear();
    let explanation = explanation?;
    for label in &explanation.truncated {
        eprintln!("warning: prompts for {label:?} exceed 77 tokens and were truncated");
    }
    let document = a
        .model
        .document(&model, method, image, input_hw, &picture, explanation);
    write_json(a.json.as_deref(), &document)?;
    if let Some(path) = &a.out {
        for written in write_overlays(path, &picture, &document.explanation, a.colormap, a.opacity)?
        {
            eprintln!("wrote {}", written.display());
        }
    }
    print_summary(&document.explanation);
    Ok(())
}

/// `segment`: one image (`--image`), or every image of `--images` into `--out-dir`.
fn segment_command(a: SegmentArgs) -> Result<()> {
    let query = a.score.query(split_labels(&a.labels));
    // Every check before the model loads.
    let texts = query.texts()?;
    if !(0.0..=1.0).contains(&a.opacity) {
        bail!("--opacity must be between 0 and 1");
    }
    let slide = a.slide.slide();
    let input_hw = match slide {
        Some(s) => [s.window; 2],
        None => parse_size(&a.size)?,
    };
    let tokenizer = load_tokenizer(a.tokenizer.as_deref())?;
    let segment = |model: &mut Model, image: &Path, progress: &mut dyn FnMut(Stage)| {
        let (clip, bank) = (&model.clip, &mut model.bank);
        // The sliding windows preprocess their own crops: the whole picture only decodes.
        let (picture, segmentation) = match slide {
            Some(slide) => {
                let picture = read_picture(image)?;
                let segmented = pollster::block_on(segment_sliding(
                    clip, &tokenizer, &picture, &query, slide, bank, progress,
                ))?;
                (picture, segmented)
            }
            None => {
                let (picture, pre) = read_image(image, input_hw)?;
                let segmented = pollster::block_on(segment_image(
                    clip, &tokenizer, &pre, &query, bank, progress,
                ))?;
                (picture, segmented)
            }
        };
        let document = SegmentDocument {
            provenance: a.model.provenance(model, query.method, image),
            size: input_hw,
            slide: slide.map(|s| [s.short_side, s.window, s.stride]),
            score: query.score,
            threshold: query.threshold,
            background: query.background.clone(),
            segmentation,
        };
        anyhow::Ok((picture, document))
    };
    let (Some(spec), Some(out_dir)) = (&a.images, &a.out_dir) else {
        let image = a.image.as_deref().context("give --image or --images")?;
        let mut model = a.model.load()?;
        let bar = stage_bar();
        let mut progress = stage_progress(&bar, "segmenting");
        let segmented = segment(&mut model, image, &mut progress);
        bar.finish_and_clear();
        let (picture, document) = segmented?;
        write_json(a.json.as_deref(), &document)?;
        if let Some(path) = &a.mask {
            files::write_mask_png(path, &document.segmentation)?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = &a.out {
            overlay_mask(&picture, &document.segmentation.mask, a.opacity)
                .save(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        print_segmentation(&document.segmentation);
        return Ok(());
    };
    // Everything the files depend on (not the device: CPU and wgpu agree to ~1e-6).
    let settings = serde_json::json!({
        "command": "segment",
        "result_version": RESULT_VERSION,
        "model": a.model.model,
        "quant": a.model.quant,
        "tokenizer": a.tokenizer,
        "labels": query.labels,
        "background": query.background,
        "threshold": query.threshold,
        "score": query.score,
        "size": input_hw,
        "slide": slide.map(|s| [s.short_side, s.window, s.stride]),
        "method": query.method,
        "opacity": a.opacity,
    });
    let plan = batch::Plan::new(batch::list_images(spec)?, out_dir, settings)?;
    let mut model = None;
    if plan.pending() > 0 {
        let mut loaded = a.model.load()?;
        encode_labels(&loaded.clip, &tokenizer, &mut loaded.bank, &texts)?;
        model = Some(loaded);
    }
    plan.run("segmenting images", |image, base| {
        let model = model.as_mut().context("the model is not loaded")?;
        let (picture, document) = segment(model, image, &mut |_| {})?;
        let result = with_suffix(base, ".json");
        write_json(Some(&result), &document)?;
        let png = with_suffix(base, ".png");
        overlay_mask(&picture, &document.segmentation.mask, a.opacity)
            .save(&png)
            .with_context(|| format!("writing {}", png.display()))?;
        Ok(batch::Outputs {
            result,
            overlays: vec![png],
        })
    })
}

/// `base` with `suffix` appended (`base` may hold dots of its own: `a.b` → `a.b.json`).
fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// What `eval-seg` evaluates, besides the model and the dataset.
struct SegRun {
    query: SegmentQuery,
    input_hw: [usize; 2],
    slide: Option<Slide>,
    limit: Option<usize>,
}

fn eval_seg(model: &ModelArgs, dataset: &Dataset, run: &SegRun) -> Result<SegmentationScores> {
    let SegRun {
        query,
        input_hw,
        slide,
        limit,
    } = run;
    let texts = query.texts()?;
    let samples = &dataset.samples[..limit.unwrap_or(usize::MAX).min(dataset.samples.len())];
    let tokenizer = load_tokenizer(None)?;
    let Model { clip, mut bank, .. } = model.load()?;
    // The labels' text once, before the images.
    encode_labels(&clip, &tokenizer, &mut bank, &texts)?;
    let mut confusion = Confusion::new(dataset.classes.len());
    let bar = images_bar(samples.len(), "segmenting images");
    for sample in samples {
        let name = sample.image.display();
        let picture = read_picture(&sample.image)?;
        let segmentation = match slide {
            Some(slide) => pollster::block_on(segment_sliding(
                &clip,
                &tokenizer,
                &picture,
                query,
                *slide,
                &mut bank,
                |_| {},
            )),
            None => {
                let pre = preprocess_image(&picture, *input_hw)?;
                pollster::block_on(segment_image(
                    &clip,
                    &tokenizer,
                    &pre,
                    query,
                    &mut bank,
                    |_| {},
                ))
            }
        }
        .with_context(|| format!("segmenting {name}"))?;
        let (truth, hw) = dataset.truth(sample)?;
        if hw != segmentation.hw {
            bail!(
                "{} is {}×{} px, its image {name} {}×{}",
                sample.truth.display(),
                hw[1],
                hw[0],
                segmentation.hw[1],
                segmentation.hw[0]
            );
        }
        confusion
            .add(&truth, &dataset.predicted_classes(&segmentation.mask))
            .with_context(|| format!("{}", sample.truth.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(SegmentationScores::new(
        &confusion,
        &dataset.classes,
        samples.len(),
    ))
}

/// Writes `value` as JSON to `path`, if given.
fn write_json(path: Option<&Path>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string(value)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A bar over the images of a dataset, with ETA.
fn images_bar(len: usize, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} {elapsed} ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Encodes `texts` into `bank` with a progress bar, before the images.
fn encode_labels(
    clip: &Clip,
    tokenizer: &ClipTokenizer,
    bank: &mut TextBank,
    texts: &[String],
) -> Result<()> {
    let bar = stage_bar();
    let mut report = stage_progress(&bar, "");
    let encoded = pollster::block_on(bank.features(clip, tokenizer, texts, |done, total| {
        report(Stage::Text(done, total))
    }));
    bar.finish_and_clear();
    encoded?;
    Ok(())
}

/// Reads and decodes one image (no preprocessing).
fn read_picture(path: &Path) -> Result<image::RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_image(&bytes).with_context(|| format!("image {}", path.display()))
}

fn eval_explain(
    model: &ModelArgs,
    dataset: &Dataset,
    input_hw: [usize; 2],
    method: Method,
    limit: Option<usize>,
) -> Result<ExplainScores> {
    let samples = &dataset.samples[..limit.unwrap_or(usize::MAX).min(dataset.samples.len())];
    let query = Query::label_set(dataset.labels.clone())?;
    let tokenizer = load_tokenizer(None)?;
    let Model { clip, mut bank, .. } = model.load()?;
    encode_labels(&clip, &tokenizer, &mut bank, &dataset.labels)?;
    let mut metrics = ExplainMetrics::default();
    let bar = images_bar(samples.len(), "explaining images");
    for sample in samples {
        let name = sample.image.display();
        let picture = read_picture(&sample.image)?;
        let pre = preprocess_image(&picture, input_hw)?;
        let explanation = pollster::block_on(explain(
            &clip,
            &tokenizer,
            &pre,
            &query,
            method,
            &mut bank,
            |_| {},
        ))
        .with_context(|| format!("explaining {name}"))?;
        let (truth, hw) = dataset.truth(sample)?;
        if hw != pre.original_hw {
            bail!(
                "{} is {}×{} px, its image {name} {}×{}",
                sample.truth.display(),
                hw[1],
                hw[0],
                pre.original_hw[1],
                pre.original_hw[0]
            );
        }
        // Each queried class present in the truth is one pair (the background class, not
        // queried, is never one).
        for (i, &class) in dataset.label_class.iter().enumerate() {
            if truth.contains(&class) {
                metrics
                    .add(&explanation.map(i, hw), &truth, class)
                    .with_context(|| format!("{}", sample.truth.display()))?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(metrics.scores())
}

fn print_explain_scores(scores: &ExplainScores) {
    for (t, miou) in scores.thresholds.iter().zip(&scores.miou_at) {
        println!("t {t:.2}  mIoU {:6.2} %", miou * 100.0);
    }
    let or_dash = |v: Option<f64>, f: fn(f64) -> String| v.map_or("—".to_string(), f);
    println!(
        "best mIoU {} % at t {}, mSC {}, {} (image, class) pairs",
        or_dash(scores.best_miou, |m| format!("{:.2}", m * 100.0)),
        scores
            .best_threshold
            .map_or("—".to_string(), |t| format!("{t:.2}")),
        or_dash(scores.msc, |m| format!("{m:.2}")),
        scores.pairs
    );
}

fn eval_multilabel(
    model: &ModelArgs,
    set: &Labelled,
    input_hw: [usize; 2],
    limit: Option<usize>,
) -> Result<MultiLabelScores> {
    let images = &set.images[..limit.unwrap_or(usize::MAX).min(set.images.len())];
    // The same checks as any label set (no label twice, none empty).
    let Query::Labels(labels) = Query::label_set(set.classes.clone())? else {
        bail!("multi-label recognition needs a label set");
    };
    let tokenizer = load_tokenizer(None)?;
    let Model { clip, mut bank, .. } = model.load()?;
    encode_labels(&clip, &tokenizer, &mut bank, &labels)?;
    let mut metrics = MultiLabel::new(labels.len());
    let bar = images_bar(images.len(), "scoring images");
    for (path, truth) in images {
        let picture = read_picture(path)?;
        let pre = preprocess_image(&picture, input_hw)?;
        let scores = pollster::block_on(label_scores(&clip, &tokenizer, &pre, &labels, &mut bank))
            .with_context(|| format!("scoring {}", path.display()))?;
        metrics.add(scores.surgery, scores.clip, truth.clone())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(metrics.scores(&set.classes))
}

fn print_multilabel(scores: &MultiLabelScores) {
    let percent = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.2}", v * 100.0));
    println!("{:>24}  {:>8}  {:>8}  positives", "AP %", "surgery", "CLIP");
    for (name, ap) in &scores.per_class {
        println!(
            "{name:>24}  {:>8}  {:>8}  {}",
            percent(ap.surgery),
            percent(ap.clip),
            ap.positives
        );
    }
    println!(
        "mAP: CLIP Surgery {} %, CLIP {} %, {} images",
        percent(scores.map_surgery),
        percent(scores.map_clip),
        scores.images
    );
}

fn print_scores(scores: &SegmentationScores) {
    let percent = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.2}", v * 100.0));
    for (name, iou) in &scores.per_class {
        println!("{name:>24}  {:>6}", percent(*iou));
    }
    println!(
        "mIoU {} %, pixel accuracy {} %, {} images",
        percent(scores.miou),
        percent(scores.pixel_accuracy),
        scores.images
    );
}

impl From<MethodArg> for Method {
    fn from(method: MethodArg) -> Self {
        match method {
            MethodArg::Surgery => Method::Surgery,
            MethodArg::Raw => Method::Raw,
        }
    }
}

/// Reads and preprocesses the picture at `path` for a `input_hw` input.
fn read_image(path: &Path, input_hw: [usize; 2]) -> Result<(image::RgbImage, Preprocessed)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    preprocess(&bytes, input_hw).with_context(|| format!("image {}", path.display()))
}

/// The model at `path` on `device`, and its text bank (with the pack's stored features).
fn load_model(path: &Path, quant: Scheme, device: DeviceArg) -> Result<Model> {
    let device = device.open()?;
    let loaded = open_with_progress(path, quant)?;
    let spinner = spinner("uploading the weights");
    let clip = Clip::from_weights(&loaded.weights, &device)
        .with_context(|| format!("loading {}", path.display()))?;
    spinner.finish_and_clear();
    let bank = TextBank::with_stored(loaded.text_bank.as_deref(), &clip)
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(Model {
        clip,
        bank,
        scheme: loaded.weights.scheme(),
    })
}

fn load_tokenizer(path: Option<&Path>) -> Result<ClipTokenizer> {
    let bytes = match path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => TOKENIZER_JSON.to_vec(),
    };
    Ok(ClipTokenizer::from_bytes(&bytes)?)
}

/// `X,Y` pixel coordinates.
fn parse_point(text: &str) -> Result<[usize; 2]> {
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .with_context(|| format!("bad --attention-at {text:?}: expected X,Y in pixels"))
    };
    match text.split_once(',') {
        Some((x, y)) => Ok([parse(x)?, parse(y)?]),
        None => bail!("bad --attention-at {text:?}: expected X,Y in pixels"),
    }
}

/// The attention query of pixel `[x, y]` of the image: the block as given (`None`: the last)
/// and the grid patch that covers the pixel once the image is resized to the input.
fn attention_query(
    clip: &Clip,
    pre: &Preprocessed,
    [x, y]: [usize; 2],
    block: Option<usize>,
) -> Result<AttentionAt> {
    let [h, w] = pre.original_hw;
    if x >= w || y >= h {
        bail!("--attention-at {x},{y} is outside the {w}×{h} image");
    }
    let [gh, gw] = clip
        .vision_model
        .grid_for(pre.input_hw[0], pre.input_hw[1])?;
    Ok(AttentionAt {
        block,
        patch: [y * gh / h, x * gw / w],
    })
}

/// `224` → 224×224; `224x320` → H×W.
fn parse_size(size: &str) -> Result<[usize; 2]> {
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .with_context(|| format!("bad --size {size:?}"))
    };
    Ok(match size.split_once(['x', 'X']) {
        Some((h, w)) => [parse(h)?, parse(w)?],
        None => [parse(size)?; 2],
    })
}

impl DeviceArg {
    fn open(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Cpu => clip_core::device::cpu(),
            DeviceArg::Wgpu => pollster::block_on(clip_core::device::wgpu())?,
        })
    }
}

/// A file-sized progress bar.
fn bar(message: String) -> ProgressBar {
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Runs the loading pipeline on `path` with a progress bar per file.
fn open_with_progress(path: &Path, quant: Scheme) -> Result<Loaded> {
    let bar = bar(String::new());
    let loaded = files::open(path, quant, &mut |progress| {
        let (message, done, total) = match progress {
            LoadProgress::File { name, done, total } => (format!("reading {name}"), done, total),
            LoadProgress::Convert {
                scheme,
                done,
                total,
            } => (format!("reading and converting to {scheme}"), done, total),
        };
        bar.set_message(message);
        bar.set_length(total.unwrap_or(done).max(1));
        bar.set_position(done);
    });
    bar.finish_and_clear();
    loaded.with_context(|| format!("loading {}", path.display()))
}

fn random(preset: &str, to: &Path, seed: u64) -> Result<()> {
    let config = ClipConfig::preset(preset).with_context(|| {
        format!("unknown preset {preset:?} (vit-b-16, vit-b-32, vit-l-14, vit-l-14-336)")
    })?;
    let spinner = spinner("drawing the weights");
    let bytes = write_safetensors(
        &RandomWeights::new(seed),
        &config,
        Naming::HuggingFace,
        safetensors::Dtype::F32,
    )?;
    spinner.finish_and_clear();
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for (name, data) in [
        ("model.safetensors", bytes.as_slice()),
        ("config.json", config.to_hf_json().as_bytes()),
    ] {
        let path = to.join(name);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{}: random-init {preset} (seed {seed}), {:.1} MB",
        to.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

fn convert(from: &Path, to: &Path, scheme: Scheme, text_bank: Option<&str>) -> Result<()> {
    // Labels are checked before the (long) conversion.
    let bank_labels = match text_bank {
        Some(list) => match Query::labels(list).context("--text-bank")? {
            Query::Labels(labels) => Some(labels),
            Query::Text(_) => None,
        },
        None => None,
    };
    // q4 calibrates its rounding on the full-precision model: keep the checkpoint whole.
    let open_as = if scheme == Scheme::Q4 {
        Scheme::F32
    } else {
        scheme
    };
    let loaded = open_with_progress(from, open_as)?;
    let mut pack = match loaded.weights {
        _ if loaded.found == Found::Pack => bail!(
            "{} is already a weight pack; convert from the original checkpoint",
            from.display()
        ),
        Weights::Pack(pack) => pack,
        // f32: the pipeline keeps a checkpoint as it is; shard it here.
        Weights::Checkpoint { bytes, config } => {
            let source = files::address(from).weights();
            let name = Path::new(&source)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            build_pack(&Checkpoint::parse(&bytes)?, &config, scheme, &name)?
        }
    };
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    // A stale manifest must not describe the new shards while they are being written.
    let manifest = to.join(MANIFEST);
    if manifest.exists() {
        std::fs::remove_file(&manifest)
            .with_context(|| format!("removing {}", manifest.display()))?;
    }
    for (info, shard) in pack.manifest.shards.iter().zip(&pack.shards) {
        let path = to.join(&info.file);
        std::fs::write(&path, shard).with_context(|| format!("writing {}", path.display()))?;
    }
    let bank_path = to.join(BANK_FILE);
    if let Some(labels) = &bank_labels {
        let bank = text_bank_of(&pack, labels)?;
        std::fs::write(&bank_path, &bank)
            .with_context(|| format!("writing {}", bank_path.display()))?;
        pack.list_text_bank(&bank);
    } else if bank_path.exists() {
        // An earlier conversion's bank describes other weights.
        std::fs::remove_file(&bank_path)
            .with_context(|| format!("removing {}", bank_path.display()))?;
    }
    std::fs::write(&manifest, pack.manifest_json())
        .with_context(|| format!("writing {}", manifest.display()))?;
    let checkpoint = std::fs::metadata(files::address(from).weights()).map_or(0, |m| m.len());
    println!(
        "{}: {scheme}, {} shards, {:.1} MB (checkpoint {:.1} MB)",
        to.display(),
        pack.shards.len(),
        pack.manifest.total_bytes() as f64 / 1e6,
        checkpoint as f64 / 1e6
    );
    Ok(())
}

/// A pack of `weights` in `scheme`; for `q4`, with the text tower's rounding calibrated on the
/// full-precision model (`model::calibration`): 4-bit there instead of int8.
fn build_pack(
    weights: &dyn WeightSource,
    config: &ClipConfig,
    scheme: Scheme,
    source: &str,
) -> Result<Pack> {
    let calibration = if scheme == Scheme::Q4 {
        let clip = Clip::load(weights, config.clone(), &clip_core::device::cpu())?;
        let words = &calibration::WORDS;
        let bar = ProgressBar::new(1).with_style(
            ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message("calibrating the text tower");
        let calibration =
            Calibration::text(&clip, &load_tokenizer(None)?, words, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64)
            })?;
        bar.finish_and_clear();
        calibration
    } else {
        Calibration::none()
    };
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {percent}% {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("encoding ({scheme})"));
    let pack = Pack::build_with(
        weights,
        config,
        scheme,
        source,
        MAX_SHARD_BYTES,
        &|name| calibration.gram(name),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    Ok(pack)
}

/// The text features of `labels` under `pack`'s weights on the CPU (as the app's CPU path
/// computes them), as a text bank file (`StoredBank`).
fn text_bank_of(pack: &Pack, labels: &[String]) -> Result<Vec<u8>> {
    let clip = Clip::from_pack(pack, &clip_core::device::cpu())?;
    let tokenizer = load_tokenizer(None)?;
    let bar = ProgressBar::new(labels.len() as u64).with_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("text bank (85 prompts a label)");
    let mut bank = TextBank::new();
    pollster::block_on(bank.features(&clip, &tokenizer, labels, |done, _| {
        bar.set_position(done as u64)
    }))?;
    bar.finish_and_clear();
    Ok(bank.stored(labels, clip.text_model.is_integer()).to_bytes())
}

/// Every scheme against f32 on the same pictures (the README's fidelity and size table).
fn eval(
    model: &str,
    images: &[PathBuf],
    labels: &str,
    sizes: &[usize],
    schemes: &[Scheme],
    device: DeviceArg,
) -> Result<()> {
    let device = device.open()?;
    let tokenizer = load_tokenizer(None)?;
    let query = Query::labels(labels)?;
    let loaded;
    let (source, config): (Box<dyn WeightSource>, ClipConfig) = match model.strip_prefix("random:")
    {
        Some(preset) => (
            Box::new(RandomWeights::new(0)),
            ClipConfig::preset(preset).with_context(|| format!("unknown preset {preset:?}"))?,
        ),
        None => {
            loaded = open_with_progress(Path::new(model), Scheme::F32)?;
            match &loaded.weights {
                Weights::Checkpoint { bytes, config } => {
                    (Box::new(Checkpoint::parse(bytes)?), config.clone())
                }
                Weights::Pack(_) => {
                    bail!("{model} is a weight pack; evaluate the checkpoint it came from")
                }
            }
        }
    };
    let reference = Clip::load(source.as_ref(), config.clone(), &device)?;
    let inputs = images
        .iter()
        .flat_map(|image| sizes.iter().map(move |&size| (image, size)))
        .map(|(image, size)| {
            let bytes =
                std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
            let (_, pre) = preprocess(&bytes, [size, size])?;
            let name = image.file_name().unwrap_or_default().to_string_lossy();
            Ok((format!("{name}@{size}"), pre))
        })
        .collect::<Result<Vec<_>>>()?;
    // One text bank per model: each model encodes the labels once, not once per input.
    let run = |clip: &Clip, bank: &mut TextBank, pre| {
        pollster::block_on(explain(
            clip,
            &tokenizer,
            pre,
            &query,
            Method::Surgery,
            bank,
            |_| {},
        ))
    };
    let mut bank = TextBank::new();
    let wanted = inputs
        .iter()
        .map(|(_, pre)| run(&reference, &mut bank, pre))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "| scheme | pack size | lowest r (label, input) | mean r | CLS top-1 agreement |\n|---|---|---|---|---|"
    );
    println!(
        "| f32 | {:.1} MB | — | — | — |",
        Scheme::F32.pack_bytes(&config) as f64 / 1e6
    );
    // q4 twice: as `convert` writes it (calibrated), and as the app converts a checkpoint on
    // load (no calibration: the text transformer stays int8).
    let variants = schemes.iter().flat_map(|&scheme| {
        let on_load = (scheme == Scheme::Q4).then_some((scheme, false));
        [Some((scheme, true)), on_load].into_iter().flatten()
    });
    for (scheme, as_converted) in variants {
        let (row, pack) = if as_converted {
            let pack = build_pack(source.as_ref(), &config, scheme, model)?;
            (scheme.name(), pack)
        } else {
            let mut ignore = |_, _| {};
            let pack = Pack::build(
                source.as_ref(),
                &config,
                scheme,
                model,
                MAX_SHARD_BYTES,
                &mut ignore,
            )?;
            ("q4, converted on load", pack)
        };
        let clip = Clip::from_pack(&pack, &device)?;
        let mut bank = TextBank::new();
        let (mut lowest, mut sum, mut n, mut agree) = ((f64::INFINITY, String::new()), 0.0, 0, 0);
        for ((name, pre), want) in inputs.iter().zip(&wanted) {
            let agreement = want.agreement(&run(&clip, &mut bank, pre)?);
            for (label, &r) in want.labels.iter().zip(&agreement.pearson) {
                if r < lowest.0 {
                    lowest = (r, format!("{label}, {name}"));
                }
                sum += r;
                n += 1;
            }
            agree += usize::from(agreement.top1_agrees);
        }
        println!(
            "| {row} | {:.1} MB | {:.4} ({}) | {:.4} | {agree}/{} |",
            pack.manifest.total_bytes() as f64 / 1e6,
            lowest.0,
            lowest.1,
            sum / n as f64,
            inputs.len()
        );
    }
    Ok(())
}

fn spinner(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A progress bar for a run's stages ([`stage_progress`] moves it).
fn stage_bar() -> ProgressBar {
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("{spinner} {msg:24} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Reports a run's stages on `bar`; `finish` names the last one.
fn stage_progress<'b>(bar: &'b ProgressBar, finish: &'static str) -> impl FnMut(Stage) + 'b {
    move |stage| match stage {
        Stage::Text(done, total) => {
            bar.set_message("text prompts (85 each)");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        Stage::Image => bar.set_message("image encoder"),
        Stage::Windows(done, total) => {
            bar.set_message("image encoder, windows");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        Stage::Finish => bar.set_message(finish),
    }
}

fn write_overlays(
    path: &Path,
    picture: &image::RgbImage,
    explanation: &Explanation,
    colormap: Colormap,
    opacity: f32,
) -> Result<Vec<PathBuf>> {
    let lut = colormap.lut();
    let hw = [picture.height() as usize, picture.width() as usize];
    let mut written = Vec::with_capacity(explanation.labels.len());
    for (i, label) in explanation.labels.iter().enumerate() {
        let map = explanation.map(i, hw);
        let target = if explanation.labels.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("overlay");
            let safe: String = label
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' })
                .collect();
            path.with_file_name(format!("{stem}-{safe}.png"))
        };
        overlay(picture, &map, &lut, opacity)
            .save(&target)
            .with_context(|| format!("writing {}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

fn print_summary(explanation: &Explanation) {
    let [gh, gw] = explanation.grid;
    println!("grid {gh}×{gw}");
    for (i, (label, score)) in explanation
        .labels
        .iter()
        .zip(&explanation.cls_scores)
        .enumerate()
    {
        let points = &explanation.points[label];
        let positives = points.positive.iter().filter(|&&p| p).count();
        let surgery = explanation
            .cls_surgery
            .get(i)
            .map(|s| format!("  surgery={s:+.4}"))
            .unwrap_or_default();
        println!(
            "{label:>24}  p={score:.3}{surgery}  points: {positives} positive, {} negative",
            points.positive.len() - positives
        );
    }
    if let Some(a) = &explanation.attention {
        let [gh, gw] = explanation.grid;
        let top = |row: &[f32]| {
            let best = (1..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b]));
            best.map_or("—".to_string(), |i| {
                format!("patch [{}, {}]", (i - 1) / gw, (i - 1) % gw)
            })
        };
        println!(
            "attention of patch {:?} in block {} (grid {gh}×{gw}): q-k peaks at {}, v-v at {}",
            a.query,
            a.block,
            top(&a.qk),
            top(&a.vv)
        );
    }
    if !explanation.tokens.is_empty() {
        let top = explanation.top_tokens(3);
        println!("tokens (cosine with the image; * the top three):");
        for (i, token) in explanation.tokens.iter().enumerate() {
            let mark = if top.contains(&i) { "*" } else { " " };
            println!("{mark}{:>23}  {:+.4}", token.text, token.score);
        }
    }
}

fn print_segmentation(segmentation: &Segmentation) {
    let [h, w] = segmentation.hw;
    println!("{w}×{h} px");
    let mut order: Vec<usize> = (0..segmentation.labels.len()).collect();
    order.sort_by(|&a, &b| segmentation.area[b].total_cmp(&segmentation.area[a]));
    for i in order {
        println!(
            "{:>24}  {:5.1} %",
            segmentation.labels[i],
            segmentation.area[i] * 100.0
        );
    }
    let background = 1.0 - segmentation.area.iter().sum::<f32>();
    if background > 0.0 {
        println!("{:>24}  {:5.1} %", "(background)", background * 100.0);
    }
}
