//! `clip-surgery`: CLIP Surgery on the command line — explain what CLIP looks at in a picture,
//! tokenize text, on the CPU or natively on wgpu. Same core as the web app.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use clip_core::burn::tensor::Device;
use clip_core::colormap::{Colormap, overlay};
use clip_core::maps::similarity_map;
use clip_core::{Clip, ClipConfig, ClipTokenizer, Explanation, Method, Query, Stage};
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

#[derive(Subcommand)]
enum Command {
    /// Similarity maps, CLS scores and Text2Points for an image and a text or label set.
    Explain {
        /// A Hugging Face CLIPModel directory (config.json + model.safetensors) or an
        /// OpenAI/open_clip-named .safetensors file.
        #[arg(long)]
        model: PathBuf,
        /// The picture (png, jpeg, webp, gif).
        #[arg(long)]
        image: PathBuf,
        /// One text (single-text mode); "a+b" explains a combined target.
        #[arg(long, conflicts_with = "labels", required_unless_present = "labels")]
        text: Option<String>,
        /// Comma-separated label set (label-set mode).
        #[arg(long)]
        labels: Option<String>,
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
        /// Compute device.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// A tokenizer.json other than the built-in CLIP BPE.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
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
        Command::Explain {
            model,
            image,
            text,
            labels,
            size,
            method,
            out,
            colormap,
            opacity,
            json,
            device,
            tokenizer,
        } => {
            let query = match (&text, &labels) {
                (Some(text), _) => Query::text(text)?,
                (None, Some(labels)) => Query::labels(labels)?,
                (None, None) => bail!("give --text or --labels"),
            };
            let input_hw = parse_size(&size)?;
            if !(0.0..=1.0).contains(&opacity) {
                bail!("--opacity must be between 0 and 1");
            }
            let method = match method {
                MethodArg::Surgery => Method::Surgery,
                MethodArg::Raw => Method::Raw,
            };
            let tokenizer = load_tokenizer(tokenizer.as_deref())?;
            let bytes =
                std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            let (picture, pre) = clip_core::preprocess::preprocess(&bytes, input_hw)
                .with_context(|| format!("image {}", image.display()))?;
            let device = match device {
                DeviceArg::Cpu => clip_core::device::cpu(),
                DeviceArg::Wgpu => pollster::block_on(clip_core::device::wgpu())?,
            };
            let spinner = spinner("loading model");
            let clip = load_model(&model, &device)?;
            spinner.finish_and_clear();
            let explanation = explain_with_progress(&clip, &tokenizer, &pre, &query, method)?;
            for label in &explanation.truncated {
                eprintln!("warning: prompts for {label:?} exceed 77 tokens and were truncated");
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string(&explanation)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = out {
                write_overlays(&path, &picture, &explanation, colormap, opacity)?;
            }
            print_summary(&explanation);
            Ok(())
        }
    }
}

fn load_tokenizer(path: Option<&Path>) -> Result<ClipTokenizer> {
    let bytes = match path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => TOKENIZER_JSON.to_vec(),
    };
    Ok(ClipTokenizer::from_bytes(&bytes)?)
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

/// A model directory (`config.json` + `model.safetensors`) or a lone `.safetensors` file.
fn load_model(path: &Path, device: &Device) -> Result<Clip> {
    let (weights, config) = if path.is_dir() {
        let config = path.join("config.json");
        let config = if config.exists() {
            let json = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            Some(ClipConfig::from_hf_json(&json).with_context(|| config.display().to_string())?)
        } else {
            None
        };
        (path.join("model.safetensors"), config)
    } else {
        (path.to_path_buf(), None)
    };
    let bytes =
        std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
    Clip::from_safetensors(&bytes, config, device)
        .with_context(|| format!("loading {}", weights.display()))
}

fn spinner(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn explain_with_progress(
    clip: &Clip,
    tokenizer: &ClipTokenizer,
    pre: &clip_core::preprocess::Preprocessed,
    query: &Query,
    method: Method,
) -> Result<Explanation> {
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("{spinner} {msg:24} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = pollster::block_on(clip_core::explain(
        clip,
        tokenizer,
        pre,
        query,
        method,
        |stage| match stage {
            Stage::Text(done, total) => {
                bar.set_message("text prompts (85 each)");
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Stage::Image => bar.set_message("image encoder"),
            Stage::Finish => bar.set_message("maps and points"),
        },
    ));
    bar.finish_and_clear();
    Ok(result?)
}

fn write_overlays(
    path: &Path,
    picture: &image::RgbImage,
    explanation: &Explanation,
    colormap: Colormap,
    opacity: f32,
) -> Result<()> {
    let lut = colormap.lut();
    let hw = [picture.height() as usize, picture.width() as usize];
    for (i, label) in explanation.labels.iter().enumerate() {
        let map = if label_is_combined(explanation, i) {
            // Combined targets are already min-maxed means; resize without re-normalising.
            clip_core::maps::resize_bilinear(&explanation.patch_column(i), explanation.grid, hw)
        } else {
            similarity_map(&explanation.patch_column(i), explanation.grid, hw)
        };
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
        eprintln!("wrote {}", target.display());
    }
    Ok(())
}

fn label_is_combined(explanation: &Explanation, i: usize) -> bool {
    explanation.labels.len() == 1
        && clip_core::prompts::split_target(&explanation.labels[i]).len() > 1
}

fn print_summary(explanation: &Explanation) {
    let [gh, gw] = explanation.grid;
    println!("grid {gh}×{gw}");
    for (label, score) in explanation.labels.iter().zip(&explanation.cls_scores) {
        let points = &explanation.points[label];
        let positives = points.positive.iter().filter(|&&p| p).count();
        println!(
            "{label:>24}  p={score:.3}  points: {positives} positive, {} negative",
            points.positive.len() - positives
        );
    }
}
