//! Batch pre-rendering (`explain --images … --out-dir …`, and `segment`): every image of a
//! folder or a glob rendered into one folder, with an `index.json` of what was made. Resumable:
//! an image whose outputs are newer than it and were made with the same settings is skipped.
//! One image's error is recorded in the index and does not stop the others.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Image files a folder is read for (as `--image` decodes them).
const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// The index file, in the output folder.
pub const INDEX: &str = "index.json";

/// `index.json`'s version.
const INDEX_VERSION: u32 = 1;

/// `index.json`: what the batch made, per image, and with which settings.
#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    /// [`INDEX_VERSION`].
    pub version: u32,
    /// The command's settings; a change re-renders every image.
    pub settings: serde_json::Value,
    /// One entry per image, in name order.
    pub images: Vec<Entry>,
}

/// One image of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The image's file name.
    pub image: String,
    /// Its result JSON, relative to the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Its overlay PNGs, relative to the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What rendering one image wrote.
pub struct Outputs {
    /// The result JSON.
    pub result: PathBuf,
    /// The overlays.
    pub overlays: Vec<PathBuf>,
}

/// The images `spec` names, sorted by name: a folder's image files, one file, or a glob's
/// matches (`*` and `?` in the file name, e.g. `photos/*.jpg`). Their stems name the outputs,
/// so two images with one stem (`a.jpg`, `a.png`) are refused.
pub fn list_images(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let mut images: Vec<PathBuf> = if path.is_dir() {
        read_dir(path)?
            .into_iter()
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        let pattern = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.contains(['*', '?']))
            .with_context(|| format!("--images {spec:?} is neither a folder, a file nor a glob"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        read_dir(dir)?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| wildcard(pattern, n))
            })
            .collect()
    };
    images.retain(|p| p.is_file());
    images.sort();
    if images.is_empty() {
        bail!("no images in --images {spec:?} (png, jpg, jpeg, webp, gif)");
    }
    for pair in images.windows(2) {
        if stem(&pair[0]) == stem(&pair[1]) {
            bail!(
                "{} and {} would write the same outputs; rename one",
                pair[0].display(),
                pair[1].display()
            );
        }
    }
    Ok(images)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.filter_map(|e| Some(e.ok()?.path())).collect())
}

/// A file's stem (its outputs' base name).
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `*` any run of characters, `?` one character; everything else itself.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// A batch: which images need rendering, given what an earlier run left in the folder.
pub struct Plan {
    out_dir: PathBuf,
    settings: serde_json::Value,
    images: Vec<PathBuf>,
    /// Per image, its entry from an earlier run when that is still up to date.
    done: Vec<Option<Entry>>,
}

impl Plan {
    /// Plans `images` into `out_dir` (created) under `settings`.
    pub fn new(images: Vec<PathBuf>, out_dir: &Path, settings: serde_json::Value) -> Result<Self> {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        let earlier: Vec<Entry> = std::fs::read_to_string(out_dir.join(INDEX))
            .ok()
            .and_then(|text| serde_json::from_str::<Index>(&text).ok())
            .filter(|index| index.version == INDEX_VERSION && index.settings == settings)
            .map(|index| index.images)
            .unwrap_or_default();
        let done = images
            .iter()
            .map(|image| {
                let entry = earlier.iter().find(|e| e.image == name(image))?;
                up_to_date(entry, image, out_dir).then(|| entry.clone())
            })
            .collect();
        Ok(Self {
            out_dir: out_dir.to_path_buf(),
            settings,
            images,
            done,
        })
    }

    /// How many images need rendering.
    pub fn pending(&self) -> usize {
        self.done.iter().filter(|d| d.is_none()).count()
    }

    /// Renders the pending images with `render(image, base)` — `base` is the output folder
    /// joined with the image's stem — with a progress bar, writing the index after each image.
    /// Fails at the end if any image failed (the index names why).
    pub fn run(
        self,
        message: &'static str,
        mut render: impl FnMut(&Path, &Path) -> Result<Outputs>,
    ) -> Result<()> {
        let pending = self.pending();
        let total = self.images.len();
        let bar = ProgressBar::new(pending as u64).with_style(
            ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} {elapsed} ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(message);
        let mut entries: Vec<Entry> = Vec::with_capacity(total);
        let mut failed = 0;
        for (image, done) in self.images.iter().zip(&self.done) {
            if let Some(entry) = done {
                entries.push(entry.clone());
                continue;
            }
            let base = self.out_dir.join(stem(image));
            let relative = |p: &Path| {
                p.strip_prefix(&self.out_dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            };
            let entry = match render(image, &base) {
                Ok(out) => Entry {
                    image: name(image),
                    result: Some(relative(&out.result)),
                    overlays: out.overlays.iter().map(|p| relative(p)).collect(),
                    error: None,
                },
                Err(e) => {
                    failed += 1;
                    // (`println` would be lost where the bar is hidden: no terminal.)
                    bar.suspend(|| eprintln!("error: {}: {e:#}", image.display()));
                    Entry {
                        image: name(image),
                        result: None,
                        overlays: vec![],
                        error: Some(format!("{e:#}")),
                    }
                }
            };
            entries.push(entry);
            self.write_index(&entries)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        self.write_index(&entries)?;
        let index = self.out_dir.join(INDEX);
        eprintln!(
            "{} rendered, {} up to date, {failed} failed of {total}: {}",
            pending - failed,
            total - pending,
            index.display()
        );
        if failed > 0 {
            bail!("{failed} of {total} images failed (their errors are in {INDEX})");
        }
        Ok(())
    }

    /// Writes `index.json` through a temporary file, so an interrupted batch leaves a whole
    /// index (of the images so far) for the next run to resume from.
    fn write_index(&self, entries: &[Entry]) -> Result<()> {
        let index = Index {
            version: INDEX_VERSION,
            settings: self.settings.clone(),
            images: entries.to_vec(),
        };
        let path = self.out_dir.join(INDEX);
        let partial = self.out_dir.join(format!("{INDEX}.partial"));
        std::fs::write(&partial, serde_json::to_string_pretty(&index)? + "\n")
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// Whether an earlier entry's outputs all exist and are newer than the image.
fn up_to_date(entry: &Entry, image: &Path, out_dir: &Path) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(input) = modified(image) else {
        return false;
    };
    let newer = |file: &String| modified(&out_dir.join(file)).is_some_and(|t| t >= input);
    entry.error.is_none()
        && entry.result.as_ref().is_some_and(newer)
        && entry.overlays.iter().all(newer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell_glob() {
        for (pattern, name, expected) in [
            ("*.jpg", "a.jpg", true),
            ("*.jpg", "a.jpg.png", false),
            ("*.jpg", ".jpg", true),
            ("cat-?.png", "cat-1.png", true),
            ("cat-?.png", "cat-10.png", false),
            ("*-*.png", "a-b-c.png", true),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "acb", false),
            ("*", "", true),
        ] {
            assert_eq!(wildcard(pattern, name), expected, "{pattern} ~ {name}");
        }
    }
}
