//! Multi-label classification sets on disk for `eval-multilabel`: a labels file beside a folder
//! of images, PASCAL VOC's classification lists, COCO's instance annotations and NUS-WIDE's
//! concept lists, each reduced to class names and, per image, which classes it has.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clip_core::input::presets::Preset;
use serde::Deserialize;

use crate::datasets::read_names;

/// The layouts `eval-multilabel --dataset` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassLayout {
    /// PASCAL VOC (`--root VOCdevkit/VOC2007`): `ImageSets/Main/<class>_<split>.txt` (`id 1`
    /// present, `-1` absent, `0` difficult: left out of that class's AP), `JPEGImages/<id>.jpg`.
    Voc,
    /// COCO (`--root coco`): `annotations/instances_<split>.json`, images in `<split>/`; a class
    /// is present where the image has an instance of it. The 80 categories in id order.
    Coco,
    /// NUS-WIDE (`--root NUS-WIDE`): `Concepts81.txt`, `ImageList/<Split>Imagelist.txt`,
    /// `Groundtruth/TrainTestLabels/Labels_<concept>_<Split>.txt` (0/1 a line, in list order),
    /// images under `Flickr/` (the list's `\` read as `/`).
    NusWide,
}

/// Images with their classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// Class names (the queried labels), in the dataset's order.
    pub classes: Vec<String>,
    /// Each image and, per class, whether it has it (`None`: not evaluated for that class).
    pub images: Vec<(PathBuf, Vec<Option<bool>>)>,
}

/// `--labels-file`: `{"classes": [names], "images": {"<path under --images>": [names]}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    classes: Vec<String>,
    images: BTreeMap<String, Vec<String>>,
}

impl Labelled {
    /// Images under `dir` with the classes `file` gives them (see [`LabelsFile`]).
    pub fn from_file(dir: &Path, file: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let parsed: LabelsFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected {{\"classes\": [...], \"images\": {{\"file\": [classes]}}}}",
                file.display()
            )
        })?;
        let index: HashMap<&str, usize> = parsed
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        if index.len() != parsed.classes.len() {
            bail!("{}: a class is listed twice", file.display());
        }
        let mut images = Vec::with_capacity(parsed.images.len());
        for (name, has) in &parsed.images {
            let mut truth = vec![Some(false); parsed.classes.len()];
            for class in has {
                let Some(&i) = index.get(class.as_str()) else {
                    bail!(
                        "{}: image {name} has {class:?}, which is not in \"classes\"",
                        file.display()
                    );
                };
                truth[i] = Some(true);
            }
            images.push((dir.join(name), truth));
        }
        Self::checked(parsed.classes, images, file)
    }

    /// A dataset of `layout` under `root`, its `split` (e.g. `val`, `test`).
    pub fn open(layout: ClassLayout, root: &Path, split: &str) -> Result<Self> {
        match layout {
            ClassLayout::Voc => Self::voc(root, split),
            ClassLayout::Coco => Self::coco(root, split),
            ClassLayout::NusWide => Self::nus_wide(root, split),
        }
    }

    fn voc(root: &Path, split: &str) -> Result<Self> {
        let classes: Vec<String> = Preset::find("voc")
            .expect("built-in preset")
            .labels
            .iter()
            .map(|s| s.to_string())
            .collect();
        // VOC's file names are its class names without spaces ("pottedplant", "tvmonitor").
        let files: Vec<String> = classes.iter().map(|c| c.replace(' ', "")).collect();
        let mut truth: BTreeMap<String, Vec<Option<bool>>> = BTreeMap::new();
        for (c, name) in files.iter().enumerate() {
            let list = root
                .join("ImageSets/Main")
                .join(format!("{name}_{split}.txt"));
            let text = std::fs::read_to_string(&list)
                .with_context(|| format!("reading {}", list.display()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut fields = line.split_whitespace();
                let (Some(id), Some(flag)) = (fields.next(), fields.next()) else {
                    bail!("{}: {line:?} is not `id flag`", list.display());
                };
                let value = match flag {
                    "1" => Some(true),
                    "-1" => Some(false),
                    "0" => None,
                    other => bail!("{}: flag {other:?} is not 1, -1 or 0", list.display()),
                };
                truth
                    .entry(id.to_string())
                    .or_insert_with(|| vec![Some(false); files.len()])[c] = value;
            }
        }
        let images = truth
            .into_iter()
            .map(|(id, t)| (root.join("JPEGImages").join(format!("{id}.jpg")), t))
            .collect();
        Self::checked(classes, images, root)
    }

    fn coco(root: &Path, split: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Instances {
            images: Vec<Image>,
            annotations: Vec<Annotation>,
            categories: Vec<Category>,
        }
        #[derive(Deserialize)]
        struct Image {
            id: u64,
            file_name: String,
        }
        #[derive(Deserialize)]
        struct Annotation {
            image_id: u64,
            category_id: u64,
        }
        #[derive(Deserialize)]
        struct Category {
            id: u64,
            name: String,
        }
        let file = root
            .join("annotations")
            .join(format!("instances_{split}.json"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let mut parsed: Instances =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        parsed.categories.sort_by_key(|c| c.id);
        let column: HashMap<u64, usize> = parsed
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let row: HashMap<u64, usize> = parsed
            .images
            .iter()
            .enumerate()
            .map(|(i, im)| (im.id, i))
            .collect();
        let n = parsed.categories.len();
        let mut truth = vec![vec![Some(false); n]; parsed.images.len()];
        for a in &parsed.annotations {
            let (Some(&r), Some(&c)) = (row.get(&a.image_id), column.get(&a.category_id)) else {
                bail!(
                    "{}: an annotation names image {} / category {}, which are not listed",
                    file.display(),
                    a.image_id,
                    a.category_id
                );
            };
            truth[r][c] = Some(true);
        }
        let images = parsed
            .images
            .iter()
            .zip(truth)
            .map(|(im, t)| (root.join(split).join(&im.file_name), t))
            .collect();
        let classes = parsed.categories.into_iter().map(|c| c.name).collect();
        Self::checked(classes, images, &file)
    }

    fn nus_wide(root: &Path, split: &str) -> Result<Self> {
        // "Test" / "Train" in NUS-WIDE's file names.
        let mut chars = split.chars();
        let split: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        let classes = read_names(&root.join("Concepts81.txt"))?;
        let list = read_names(&root.join("ImageList").join(format!("{split}Imagelist.txt")))?;
        let mut truth = vec![vec![Some(false); classes.len()]; list.len()];
        for (c, concept) in classes.iter().enumerate() {
            let file = root
                .join("Groundtruth/TrainTestLabels")
                .join(format!("Labels_{concept}_{split}.txt"));
            let flags = read_names(&file)?;
            if flags.len() != list.len() {
                bail!(
                    "{} has {} lines for {} images",
                    file.display(),
                    flags.len(),
                    list.len()
                );
            }
            for (row, flag) in truth.iter_mut().zip(&flags) {
                row[c] = Some(match flag.as_str() {
                    "1" => true,
                    "0" => false,
                    other => bail!("{}: {other:?} is not 0 or 1", file.display()),
                });
            }
        }
        let images = list
            .iter()
            .zip(truth)
            .map(|(path, t)| (root.join("Flickr").join(path.replace('\\', "/")), t))
            .collect();
        Self::checked(classes, images, root)
    }

    fn checked(
        classes: Vec<String>,
        images: Vec<(PathBuf, Vec<Option<bool>>)>,
        source: &Path,
    ) -> Result<Self> {
        if classes.len() < 2 {
            bail!(
                "{}: multi-label recognition needs at least two classes",
                source.display()
            );
        }
        if images.is_empty() {
            bail!("{}: no images listed", source.display());
        }
        Ok(Self { classes, images })
    }
}
