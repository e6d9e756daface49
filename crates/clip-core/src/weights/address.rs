//! Model addresses: what a URL, a path or a set of picked files names — a directory (a weight
//! pack's or a Hugging Face checkpoint's), a pack's `manifest.json`, or one `.safetensors`
//! file — and where that model's other files are.
//!
//! Rules, the same for the CLI and the web app:
//! - the kind is read from the path alone: a query string (`?download=true`, `?rev=2`) and a
//!   fragment never decide it;
//! - the files beside the one named are *siblings*: the same directory, the same query string
//!   (a revision or a signed-URL token applies to every file), never the fragment (a browser
//!   never sends it);
//! - a bare file name (`weights.safetensors`) is relative: its siblings are bare names too, so
//!   they resolve where the file does (never at the site root).

use crate::error::{ClipError, Result};
use crate::weights::pack::{MANIFEST, Scheme};

/// A Hugging Face checkpoint's config, beside its weights.
pub const CONFIG: &str = "config.json";
/// A Hugging Face checkpoint's weights in a model directory.
pub const WEIGHTS: &str = "model.safetensors";

/// What an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A directory: a weight pack (`manifest.json`) or a checkpoint (`config.json` +
    /// `model.safetensors`).
    Directory,
    /// A weight pack's manifest.
    Manifest,
    /// One `.safetensors` file: Hugging Face naming with a `config.json` beside it, or
    /// OpenAI/open_clip naming (config inferred from the shapes).
    Weights,
}

/// A resolved model address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAddress {
    /// The directory: everything up to and including the last `/`, or empty (relative).
    dir: String,
    /// The file named, for [`Target::Manifest`] and [`Target::Weights`].
    file: String,
    /// `?…` (or empty), kept for every sibling.
    query: String,
    target: Target,
}

impl ModelAddress {
    /// An address as a user typed it in the web app: an absolute or relative URL.
    pub fn url(url: &str) -> Self {
        let url = url.trim();
        let url = url.split_once('#').map_or(url, |(before, _)| before);
        let (path, query) = match url.find('?') {
            Some(i) => url.split_at(i),
            None => (url, ""),
        };
        Self::classify(path, query, None)
    }

    /// A local path (a path has no query or fragment: `?` and `#` are part of the name).
    /// `is_file` says whether it names a file (the caller asked the file system).
    pub fn path(path: &str, is_file: bool) -> Self {
        Self::classify(path, "", Some(is_file))
    }

    /// Files a user picked or dropped: a pack (its `manifest.json` among them) or a checkpoint
    /// (a `.safetensors` file, perhaps with its `config.json`).
    pub fn picked<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let names = || names.iter().map(AsRef::as_ref);
        let file = names()
            .find(|n| *n == MANIFEST)
            .or_else(|| names().find(|n| has_extension(n, ".safetensors")))
            .ok_or_else(|| {
                ClipError::Pack(
                    "pick a .safetensors weights file (and its config.json for Hugging Face \
                     models), or a pack's manifest.json and shards"
                        .into(),
                )
            })?;
        Ok(Self::classify(file, "", Some(true)))
    }

    fn classify(path: &str, query: &str, is_file: Option<bool>) -> Self {
        let (dir, name) = match path.rfind('/') {
            Some(slash) => path.split_at(slash + 1),
            None => ("", path),
        };
        let target = if name.is_empty() || is_file == Some(false) {
            Target::Directory
        } else if has_extension(name, ".json") {
            Target::Manifest
        } else if has_extension(name, ".safetensors") || is_file == Some(true) {
            Target::Weights
        } else {
            Target::Directory
        };
        let (dir, file) = match target {
            Target::Directory if name.is_empty() => (dir.to_string(), String::new()),
            // A directory named without its trailing slash.
            Target::Directory => (format!("{path}/"), String::new()),
            _ => (dir.to_string(), name.to_string()),
        };
        Self {
            dir,
            file,
            query: query.to_string(),
            target,
        }
    }

    /// What the address names.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The file `name` beside the model's files.
    pub fn sibling(&self, name: &str) -> String {
        format!("{}{name}{}", self.dir, self.query)
    }

    /// The pack manifest: the file named, or the one a directory may hold.
    pub fn manifest(&self) -> String {
        match self.target {
            Target::Manifest => self.sibling(&self.file),
            Target::Directory | Target::Weights => self.sibling(MANIFEST),
        }
    }

    /// A checkpoint's `config.json`.
    pub fn config(&self) -> String {
        self.sibling(CONFIG)
    }

    /// A checkpoint's weights: the file named, or a directory's `model.safetensors`.
    pub fn weights(&self) -> String {
        match self.target {
            Target::Weights => self.sibling(&self.file),
            Target::Directory | Target::Manifest => self.sibling(WEIGHTS),
        }
    }

    /// Where a `scheme` conversion of this checkpoint keeps `file` in a cache: keys under the
    /// weights URL that are only ever used with a cache, never fetched.
    pub fn conversion_key(&self, scheme: Scheme, file: &str) -> String {
        let weights = self.weights();
        let joiner = if weights.contains('?') { '&' } else { '?' };
        format!("{weights}{joiner}clip-surgery-pack={scheme}&file={file}")
    }

    /// Cache keys any of which, cached, lets this model load without the network at `quant`:
    /// the pack manifest, the checkpoint's weights, or a conversion's manifest.
    pub fn cache_keys(&self, quant: Scheme) -> Vec<String> {
        let mut keys = match self.target {
            Target::Manifest => return vec![self.manifest()],
            Target::Directory => vec![self.manifest(), self.weights()],
            Target::Weights => vec![self.weights()],
        };
        if quant != Scheme::F32 {
            keys.push(self.conversion_key(quant, MANIFEST));
        }
        keys
    }
}

fn has_extension(name: &str, extension: &str) -> bool {
    name.len() > extension.len()
        && name
            .get(name.len() - extension.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(a: &ModelAddress) -> [String; 3] {
        [a.manifest(), a.config(), a.weights()]
    }

    #[test]
    fn directories_with_and_without_slash() {
        for url in [
            "https://h.co/m/resolve/main",
            "https://h.co/m/resolve/main/",
        ] {
            let a = ModelAddress::url(url);
            assert_eq!(a.target(), Target::Directory);
            assert_eq!(
                all(&a),
                [
                    "https://h.co/m/resolve/main/manifest.json",
                    "https://h.co/m/resolve/main/config.json",
                    "https://h.co/m/resolve/main/model.safetensors"
                ]
            );
        }
    }

    #[test]
    fn query_strings_go_to_every_sibling_and_fragments_nowhere() {
        let a = ModelAddress::url("https://h.co/m/model.safetensors?download=true#frag");
        assert_eq!(a.target(), Target::Weights);
        assert_eq!(a.config(), "https://h.co/m/config.json?download=true");
        assert_eq!(
            a.weights(),
            "https://h.co/m/model.safetensors?download=true"
        );
        let a = ModelAddress::url("https://h.co/clip-b16/?rev=2");
        assert_eq!(a.target(), Target::Directory);
        assert_eq!(
            all(&a),
            [
                "https://h.co/clip-b16/manifest.json?rev=2",
                "https://h.co/clip-b16/config.json?rev=2",
                "https://h.co/clip-b16/model.safetensors?rev=2"
            ]
        );
        // A query that looks like a file decides nothing.
        let a = ModelAddress::url("https://h.co/packs/int8?file=x.safetensors");
        assert_eq!(a.target(), Target::Directory);
        assert_eq!(
            a.manifest(),
            "https://h.co/packs/int8/manifest.json?file=x.safetensors"
        );
        let a = ModelAddress::url("https://h.co/p/manifest.json?x=1");
        assert_eq!(a.target(), Target::Manifest);
        assert_eq!(
            a.sibling("shard-000.bin"),
            "https://h.co/p/shard-000.bin?x=1"
        );
    }

    #[test]
    fn a_bare_file_name_stays_relative() {
        let a = ModelAddress::url("weights.safetensors");
        assert_eq!(a.config(), "config.json");
        assert_eq!(a.weights(), "weights.safetensors");
        let a = ModelAddress::url("models/tiny/weights.safetensors");
        assert_eq!(a.config(), "models/tiny/config.json");
    }

    #[test]
    fn conversion_keys_and_cache_keys() {
        let a = ModelAddress::url("https://h.co/m/model.safetensors");
        assert_eq!(
            a.conversion_key(Scheme::Q4, MANIFEST),
            "https://h.co/m/model.safetensors?clip-surgery-pack=q4&file=manifest.json"
        );
        let a = ModelAddress::url("https://h.co/m/model.safetensors?download=1");
        assert_eq!(
            a.conversion_key(Scheme::Int8, "shard-000.bin"),
            "https://h.co/m/model.safetensors?download=1&clip-surgery-pack=int8&file=shard-000.bin"
        );
        let dir = ModelAddress::url("https://h.co/m");
        assert_eq!(dir.cache_keys(Scheme::F32).len(), 2);
        assert!(
            dir.cache_keys(Scheme::Int8)
                .contains(&dir.conversion_key(Scheme::Int8, MANIFEST))
        );
        assert_eq!(
            ModelAddress::url("p/manifest.json").cache_keys(Scheme::Int8),
            ["p/manifest.json"]
        );
    }

    #[test]
    fn paths_and_picked_files() {
        let a = ModelAddress::path("/tmp/what?#x", false);
        assert_eq!(a.config(), "/tmp/what?#x/config.json");
        let a = ModelAddress::path("/tmp/openai-b16.bin", true);
        assert_eq!(a.target(), Target::Weights);
        assert_eq!(a.weights(), "/tmp/openai-b16.bin");
        let a = ModelAddress::path("/tmp/pack/manifest.json", true);
        assert_eq!(a.target(), Target::Manifest);
        let picked = ModelAddress::picked(&["config.json", "model.safetensors"]).unwrap();
        assert_eq!(
            (picked.target(), picked.weights()),
            (Target::Weights, "model.safetensors".into())
        );
        let picked = ModelAddress::picked(&["shard-000.bin", "manifest.json"]).unwrap();
        assert_eq!(picked.target(), Target::Manifest);
        assert!(ModelAddress::picked(&["notes.txt"]).is_err());
        assert!(ModelAddress::picked::<&str>(&[]).is_err());
    }
}
