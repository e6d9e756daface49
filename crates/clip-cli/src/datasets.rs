//! Segmentation datasets on disk for `eval-seg`: the standard directory layouts (as
//! mmsegmentation prepares them) and a plain `folder` layout, each reduced to image/truth
//! pairs, the dataset's classes, and how a prediction maps onto them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clip_core::input::presets::Preset;
use clip_core::output::evaluation::IGNORE;
use clip_core::output::segmentation::BACKGROUND;

/// The layouts `eval-seg --dataset` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// PASCAL VOC 2012 val (`--root VOCdevkit/VOC2012`): 20 classes + background (class 0).
    Voc,
    /// PASCAL Context 59 val (`--root VOCdevkit/VOC2010`, mmseg's `SegmentationClassContext`):
    /// 59 classes; its background (value 0) is ignored.
    Context,
    /// COCO-Stuff 164k val (`--root coco_stuff164k`, `*_labelTrainIds.png`): 171 classes.
    CocoStuff,
    /// COCO-Object val (`--root coco_stuff164k`, `*_instanceTrainIds.png` as SCLIP converts
    /// them): 80 classes + background (class 0).
    CocoObject,
    /// Cityscapes val (`--root cityscapes`, `*_gtFine_labelTrainIds.png`): 19 classes.
    Cityscapes,
    /// ADE20K val (`--root ADEChallengeData2016`): 150 classes; value 0 is ignored.
    Ade,
    /// `images/<id>.(jpg|jpeg|png)`, `masks/<id>.png` (8-bit, pixel = class index in
    /// `classes.txt` order, 255 = ignore), `classes.txt` (one name a line). A class named
    /// `background` is the one background pixels count as, and is not queried.
    Folder,
}

/// One image and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image file.
    pub image: PathBuf,
    /// The truth mask (8-bit grey or paletted PNG).
    pub truth: PathBuf,
}

/// A dataset ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Class names in class-value order (the metrics' names).
    pub classes: Vec<String>,
    /// The labels to query (every class but the background class).
    pub labels: Vec<String>,
    /// The class value of each queried label.
    pub label_class: Vec<u8>,
    /// The class that background pixels (background words, the probability floor) count as.
    pub background_class: Option<u8>,
    /// Truth values are shifted down by one and 0 becomes ignored (ADE, Context 59).
    pub reduce_zero_label: bool,
    /// Image/truth pairs, sorted by id.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Reads the dataset of `layout` under `root`. `classes`: a file of label names (one a
    /// line) to query instead of the dataset's, same count and order.
    pub fn open(layout: Layout, root: &Path, classes: Option<&Path>) -> Result<Self> {
        let preset = |name| {
            Preset::find(name)
                .map(|p| p.labels.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("built-in preset")
        };
        let with_background = |names: Vec<String>| {
            let mut all = vec!["background".to_string()];
            all.extend(names);
            all
        };
        let (names, reduce_zero_label, samples) = match layout {
            Layout::Voc => (
                with_background(preset("voc")),
                false,
                listed(
                    root,
                    "ImageSets/Segmentation/val.txt",
                    |id| root.join("JPEGImages").join(format!("{id}.jpg")),
                    |id| root.join("SegmentationClass").join(format!("{id}.png")),
                )?,
            ),
            Layout::Context => (
                preset("context"),
                true,
                listed(
                    root,
                    "ImageSets/SegmentationContext/val.txt",
                    |id| root.join("JPEGImages").join(format!("{id}.jpg")),
                    |id| {
                        root.join("SegmentationClassContext")
                            .join(format!("{id}.png"))
                    },
                )?,
            ),
            Layout::CocoStuff => (
                preset("coco-stuff"),
                false,
                paired(
                    &root.join("images/val2017"),
                    &root.join("annotations/val2017"),
                    ".jpg",
                    "_labelTrainIds.png",
                )?,
            ),
            Layout::CocoObject => (
                with_background(preset("coco-object")),
                false,
                paired(
                    &root.join("images/val2017"),
                    &root.join("annotations/val2017"),
                    ".jpg",
                    "_instanceTrainIds.png",
                )?,
            ),
            Layout::Cityscapes => (
                preset("cityscapes"),
                false,
                paired_nested(
                    &root.join("leftImg8bit/val"),
                    &root.join("gtFine/val"),
                    "_leftImg8bit.png",
                    "_gtFine_labelTrainIds.png",
                )?,
            ),
            Layout::Ade => (
                preset("ade"),
                true,
                paired(
                    &root.join("images/validation"),
                    &root.join("annotations/validation"),
                    ".jpg",
                    ".png",
                )?,
            ),
            Layout::Folder => {
                let file = root.join("classes.txt");
                let names = read_names(&file)?;
                let mut samples = Vec::new();
                for ext in [".jpg", ".jpeg", ".png"] {
                    samples.extend(paired(
                        &root.join("images"),
                        &root.join("masks"),
                        ext,
                        ".png",
                    )?);
                }
                samples.sort_by(|a, b| a.image.cmp(&b.image));
                (names, false, samples)
            }
        };
        if names.len() > usize::from(IGNORE) {
            bail!(
                "{} classes: at most {} fit a byte mask beside the ignore value",
                names.len(),
                IGNORE
            );
        }
        let background_class = names
            .iter()
            .position(|n| n == "background")
            .map(|i| i as u8);
        let label_class: Vec<u8> = (0..names.len() as u8)
            .filter(|&c| Some(c) != background_class)
            .collect();
        let mut labels: Vec<String> = label_class
            .iter()
            .map(|&c| names[usize::from(c)].clone())
            .collect();
        if let Some(file) = classes {
            let renamed = read_names(file)?;
            if renamed.len() != labels.len() {
                bail!(
                    "{} names {} labels; the dataset queries {}",
                    file.display(),
                    renamed.len(),
                    labels.len()
                );
            }
            labels = renamed;
        }
        if samples.is_empty() {
            bail!(
                "no image/truth pairs found under {} for --dataset {}",
                root.display(),
                layout.name()
            );
        }
        Ok(Self {
            classes: names,
            labels,
            label_class,
            background_class,
            reduce_zero_label,
            samples,
        })
    }

    /// A segmentation mask (label indices, [`BACKGROUND`]) as class values; a background pixel
    /// without a background class becomes a value no class has (wrong for every class).
    pub fn predicted_classes(&self, mask: &[u8]) -> Vec<u8> {
        mask.iter()
            .map(|&m| match m {
                BACKGROUND => self.background_class.unwrap_or(IGNORE),
                m => self
                    .label_class
                    .get(usize::from(m))
                    .copied()
                    .unwrap_or(IGNORE),
            })
            .collect()
    }

    /// The truth of `sample` as class values ([`IGNORE`] not evaluated), and its `[h, w]`.
    pub fn truth(&self, sample: &Sample) -> Result<(Vec<u8>, [usize; 2])> {
        let (mut values, hw) = read_mask(&sample.truth)?;
        if self.reduce_zero_label {
            for v in &mut values {
                *v = match *v {
                    0 | IGNORE => IGNORE,
                    v => v - 1,
                };
            }
        }
        Ok((values, hw))
    }
}

impl Layout {
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// One name a line, trimmed, blank lines skipped.
pub fn read_names(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The ids of a split file, each with its image and truth.
fn listed(
    root: &Path,
    split: &str,
    image: impl Fn(&str) -> PathBuf,
    truth: impl Fn(&str) -> PathBuf,
) -> Result<Vec<Sample>> {
    Ok(read_names(&root.join(split))?
        .iter()
        .map(|id| Sample {
            image: image(id),
            truth: truth(id),
        })
        .collect())
}

/// Every `<id><image_suffix>` in `images` whose `<id><truth_suffix>` is in `truths`.
fn paired(
    images: &Path,
    truths: &Path,
    image_suffix: &str,
    truth_suffix: &str,
) -> Result<Vec<Sample>> {
    let entries = match std::fs::read_dir(images) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", images.display())),
    };
    let mut samples = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(image_suffix) {
            let truth = truths.join(format!("{id}{truth_suffix}"));
            if truth.exists() {
                samples.push(Sample {
                    image: images.join(&name),
                    truth,
                });
            }
        }
    }
    samples.sort_by(|a, b| a.image.cmp(&b.image));
    Ok(samples)
}

/// [`paired`] over the subfolders (Cityscapes' cities).
fn paired_nested(
    images: &Path,
    truths: &Path,
    image_suffix: &str,
    truth_suffix: &str,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    if let Ok(entries) = std::fs::read_dir(images) {
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                let sub = entry.file_name();
                samples.extend(paired(
                    &images.join(&sub),
                    &truths.join(&sub),
                    image_suffix,
                    truth_suffix,
                )?);
            }
        }
    }
    samples.sort_by(|a, b| a.image.cmp(&b.image));
    Ok(samples)
}

/// An 8-bit grey or paletted PNG's raw values (palette indices, not colours).
pub fn read_mask(path: &Path) -> Result<(Vec<u8>, [usize; 2])> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("reading {}", path.display()))?;
    let info = reader.info();
    let fits = info.bit_depth == png::BitDepth::Eight
        && matches!(
            info.color_type,
            png::ColorType::Grayscale | png::ColorType::Indexed
        );
    if !fits {
        bail!(
            "{}: a truth mask must be an 8-bit grey or paletted PNG (it is {:?}, {:?} bits)",
            path.display(),
            info.color_type,
            info.bit_depth
        );
    }
    let mut values = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let frame = reader
        .next_frame(&mut values)
        .with_context(|| format!("reading {}", path.display()))?;
    values.truncate(frame.buffer_size());
    Ok((values, [frame.height as usize, frame.width as usize]))
}
