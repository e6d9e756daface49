//! The app's one state and its reducer. An [`Action`] says what happened — the user edited a
//! control, asked for a run or a model, the worker answered — and the reducer applies it to the
//! *current* state. What must then be done outside (a message to the worker, a fetch) is written
//! into the state as a wish ([`ModelState::Wanted`], [`RunState::Wanted`], [`ImageWish`]) and
//! carried out by the hooks in [`crate::ui::hooks`], which answer with the `…Requested` actions.
//! So the reducer is pure and tested natively, and no callback acts on a render-time copy.

use std::rc::Rc;

use clip_protocol::{DeviceKind, ModelInfo, Response, RunResult, Scope, Task};
use js_sys::ArrayBuffer;
use web_sys::File;
use yew::Reducible;

use crate::params::{
    DEFAULT_PATCH, Edit, Mode, Params, View, check_size, default_model, parse_size,
};
use crate::render::Picture;

/// A progress bar's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What is progressing.
    pub task: Option<Task>,
    /// Units done.
    pub done: f64,
    /// Units in all (0 = unknown).
    pub total: f64,
}

impl Progress {
    fn start() -> Self {
        Self {
            task: None,
            done: 0.0,
            total: 0.0,
        }
    }
}

/// The compute device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceState {
    /// Being chosen.
    Starting,
    /// In use; `note` says why it is not WebGPU (or that the GPU was lost), when it is not.
    Ready {
        /// Which.
        kind: DeviceKind,
        /// Fallback or loss explanation.
        note: Option<String>,
        /// CPU threads (1 on WebGPU).
        threads: u32,
    },
    /// None usable.
    Failed(String),
}

/// Where a model should come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelWish {
    /// A URL (directory, `.safetensors`, pack manifest).
    Url(String),
    /// Picked or dropped files.
    Files(Rc<Vec<File>>),
}

/// The model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// Nothing asked for yet.
    Idle,
    /// Asked for; the worker hook sends it once the device is ready.
    Wanted(ModelWish),
    /// Request `id` is downloading or uploading.
    Loading {
        /// Request id.
        id: u64,
        /// Source, for the status line.
        name: String,
        /// Where it is.
        progress: Progress,
    },
    /// Ready to run.
    Ready(Rc<ModelInfo>),
}

/// Where an image should come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A URL (also the bundled samples).
    Url(String),
    /// A picked, dropped or pasted file.
    File(File),
    /// Bytes the page already holds (camera snapshot, restoring a restarted worker).
    Bytes(ArrayBuffer, String),
}

/// An image to open, numbered so that the same source asked for twice is news.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageWish {
    /// Increases with every wish.
    pub serial: u64,
    /// From where.
    pub source: ImageSource,
}

/// The current image (a preview of it; the worker holds the full one).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    /// Worker image id.
    pub id: u64,
    /// Where it came from (file name, URL, "camera").
    pub name: String,
    /// The preview under the heatmap.
    pub picture: Rc<Picture>,
    /// A small copy for the per-label thumbnails.
    pub thumb: Rc<Picture>,
    /// Original `[height, width]`.
    pub original_hw: [usize; 2],
}

/// The explanation.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Nothing running.
    Idle,
    /// Asked for (a click, or the URL contract); the worker hook sends it once model and image
    /// are ready.
    Wanted,
    /// Request `id` is running.
    Running {
        /// Request id.
        id: u64,
        /// The image it is about.
        image: u64,
        /// Where it is.
        progress: Progress,
    },
}

/// A result file shown without a model (`?result=`): the page fetches it and draws it over the
/// image; the worker starts only when the user asks for a live run.
#[derive(Debug, Clone, PartialEq)]
pub enum Viewer {
    /// To fetch from this URL.
    Wanted(String),
    /// Being fetched.
    Fetching,
    /// Shown: it is [`State::result`].
    Shown,
    /// Could not be shown (the message is the run error).
    Failed,
}

/// What Cache Storage holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheState {
    /// Bytes.
    pub bytes: f64,
    /// Cached file URLs.
    pub urls: Vec<String>,
    /// Whether the worker has answered at least once.
    pub known: bool,
}

impl CacheState {
    /// The cached models by name: the folder of each cached `config.json` (a Hugging Face
    /// directory; on the hub the repository, before `resolve/<revision>`) or `manifest.json`
    /// (a weight pack), the file name of a single `.safetensors`.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for url in &self.urls {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            let parts: Vec<&str> = path.split('/').collect();
            let file = parts.last().copied().unwrap_or_default();
            let folder = match parts.iter().rposition(|p| *p == "resolve") {
                Some(i) if i > 0 => parts[i - 1],
                _ => parts.iter().rev().nth(1).copied().unwrap_or_default(),
            };
            let name = match file {
                "config.json" | "manifest.json" => folder.to_string(),
                f if f.ends_with(".safetensors") && !self.has_config(path) => f.to_string(),
                _ => continue,
            };
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Whether the folder of `path` has a cached `config.json`.
    fn has_config(&self, path: &str) -> bool {
        let folder = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        self.urls
            .iter()
            .any(|u| *u == format!("{folder}config.json"))
    }
}

/// Everything the UI shows.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The URL contract's values (the controls' values).
    pub params: Params,
    /// Problems with the address's parameters, and a result file over an image not its own.
    pub warnings: Vec<String>,
    /// The device.
    pub device: DeviceState,
    /// The model.
    pub model: ModelState,
    /// Last model error (kept until the next load).
    pub model_error: Option<String>,
    /// An image to open.
    pub image_wish: Option<ImageWish>,
    /// Id and name of the image being decoded.
    pub image_pending: Option<(u64, String)>,
    /// The image shown.
    pub image: Option<Rc<LoadedImage>>,
    /// Last image error.
    pub image_error: Option<String>,
    /// The explanation.
    pub run: RunState,
    /// Last explanation error.
    pub run_error: Option<String>,
    /// Why the typed custom size was not taken.
    pub size_error: Option<String>,
    /// The last result (kept when a later run fails).
    pub result: Option<Rc<RunResult>>,
    /// Id of the image the result belongs to.
    pub result_image: u64,
    /// The newest error of any kind, numbered so that a repeat is news too (published to
    /// `window.clipSurgery.lastError`).
    pub last_error: Option<(u64, String)>,
    /// Index of the label shown large.
    pub selected: usize,
    /// Cache Storage.
    pub cache: CacheState,
    /// The worker died (message); the UI offers a restart.
    pub worker_error: Option<String>,
    /// Increases with every (re)start of the worker.
    pub worker: u64,
    /// A result file shown without a model; `None` in live mode.
    pub viewer: Option<Viewer>,
}

impl State {
    /// Initial state from the address's parameters: the image it names (or the first sample)
    /// is wanted at once, and a run too when it also names a query.
    pub fn new(params: Params, warnings: Vec<String>, first_sample: &str) -> Self {
        let viewer = params.result.clone().map(Viewer::Wanted);
        let run = if viewer.is_none()
            && params.image.is_some()
            && matches!(params.query(), Some(Ok(_)))
        {
            RunState::Wanted
        } else {
            RunState::Idle
        };
        let image = params.image.clone().unwrap_or_else(|| first_sample.into());
        Self {
            params,
            warnings,
            device: DeviceState::Starting,
            model: ModelState::Idle,
            model_error: None,
            image_wish: Some(ImageWish {
                serial: 1,
                source: ImageSource::Url(image),
            }),
            image_pending: None,
            image: None,
            image_error: None,
            run,
            run_error: None,
            size_error: None,
            result: None,
            result_image: 0,
            last_error: None,
            selected: 0,
            cache: CacheState::default(),
            worker_error: None,
            worker: 1,
            viewer,
        }
    }

    /// The model, when ready.
    pub fn model_info(&self) -> Option<&ModelInfo> {
        match &self.model {
            ModelState::Ready(info) => Some(info),
            _ => None,
        }
    }

    /// Whether a run can be sent now.
    pub fn can_run(&self) -> bool {
        self.model_info().is_some() && self.image.is_some() && self.worker_error.is_none()
    }

    /// The loaded model's patch and largest input side, or the default model's before one
    /// loads (ViT-B/16, no device limit known yet).
    pub fn input_limits(&self) -> (usize, usize) {
        match self.model_info() {
            Some(info) => (info.patch, info.max_side),
            None => (DEFAULT_PATCH, clip_core::input::preprocess::MAX_INPUT_SIDE),
        }
    }

    /// The result for the image shown, if any.
    pub fn shown_result(&self) -> Option<Rc<RunResult>> {
        let image = self.image.as_ref()?;
        self.result
            .clone()
            .filter(|_| image.id == self.result_image)
    }
}

/// Everything that changes the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A control changed.
    Edit(Edit),
    /// The user typed a custom input size (`H` or `HxW`).
    TypeSize(String),
    /// The user asked for the model at a URL.
    LoadModelUrl(String),
    /// The user picked or dropped model files.
    LoadModelFiles(Rc<Vec<File>>),
    /// The address (or the cache) says the current model should load by itself.
    AutoLoadModel,
    /// The user opened an image.
    OpenImage(ImageSource),
    /// The user asked for an explanation.
    Run,
    /// Show label `i` large.
    Select(usize),
    /// Hide the address warnings.
    DismissWarnings,
    /// The user asked for a new worker.
    RestartWorker,
    /// A model load was sent.
    ModelRequested {
        /// Request id.
        id: u64,
        /// Source, for the status line.
        name: String,
    },
    /// An image was sent for decoding.
    ImageRequested {
        /// Request id.
        id: u64,
        /// File name, URL or "camera snapshot".
        name: String,
    },
    /// The page could not even get the image bytes (URL fetch, camera).
    ImageFailed(String),
    /// The worker decoded an image.
    ImageReady {
        /// Request id.
        id: u64,
        /// The preview.
        picture: Rc<Picture>,
        /// Its thumbnail.
        thumb: Rc<Picture>,
        /// Original `[height, width]`.
        original_hw: [usize; 2],
    },
    /// An explanation was sent.
    RunRequested {
        /// Request id.
        id: u64,
        /// The image it is about.
        image: u64,
    },
    /// The result file is being fetched.
    ResultRequested,
    /// The result file arrived and was read, or why not.
    ResultFetched(Result<Rc<RunResult>, String>),
    /// Leave the result file for a live run (the model loads).
    RunLive,
    /// A worker message (other than `Image`, which carries pixels).
    Worker(Response),
    /// The worker died.
    WorkerDied(String),
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Edit(edit) => s.edit(edit),
            Action::TypeSize(text) => {
                let (patch, max_side) = s.input_limits();
                let checked = parse_size(&text)
                    .ok_or_else(|| "Type a size such as 448 or 224x320.".to_string())
                    .and_then(|size| check_size(size, patch, max_side).map(|()| size));
                match checked {
                    Ok(size) => {
                        s.params.size = size;
                        s.size_error = None;
                    }
                    Err(why) => s.size_error = Some(why),
                }
            }
            Action::LoadModelUrl(url) => {
                s.go_live();
                let url = if url.is_empty() {
                    default_model().to_string()
                } else {
                    url
                };
                s.params.model = url.clone();
                s.model = ModelState::Wanted(ModelWish::Url(url));
            }
            Action::LoadModelFiles(files) => {
                s.go_live();
                s.model = ModelState::Wanted(ModelWish::Files(files));
            }
            Action::AutoLoadModel => {
                if s.model == ModelState::Idle {
                    s.model = ModelState::Wanted(ModelWish::Url(s.params.model.clone()));
                }
            }
            Action::OpenImage(source) => {
                // Another picture is for a live run: the file's result is of its own image.
                if s.image.is_some() {
                    s.go_live();
                }
                // A local image cannot be part of a share link; a URL is.
                s.params.image = match &source {
                    ImageSource::Url(url) => Some(url.clone()),
                    ImageSource::File(_) | ImageSource::Bytes(..) => None,
                };
                let serial = s.image_wish.as_ref().map_or(1, |w| w.serial + 1);
                s.image_wish = Some(ImageWish { serial, source });
            }
            Action::Run if s.viewer.is_some() => {
                s.go_live();
                s.run = RunState::Wanted;
            }
            Action::Run => s.run_asked(),
            Action::RunLive => {
                s.go_live();
                s.run = RunState::Wanted;
            }
            Action::ResultRequested => s.viewer = Some(Viewer::Fetching),
            Action::ResultFetched(Ok(run)) if s.viewer.is_some() => {
                s.viewer = Some(Viewer::Shown);
                s.show_file(&run);
                s.result_image = s.image.as_ref().map_or(0, |i| i.id);
                s.result = Some(run);
                s.check_file_image();
            }
            Action::ResultFetched(Err(message)) if s.viewer.is_some() => {
                s.viewer = Some(Viewer::Failed);
                s.run_error = Some(message.clone());
                s.error(message);
            }
            // Live already: the file no longer matters.
            Action::ResultFetched(_) => {}
            Action::Select(i) => s.selected = i,
            Action::DismissWarnings => s.warnings.clear(),
            Action::RestartWorker => {
                s.worker += 1;
                s.worker_error = None;
                s.device = DeviceState::Starting;
                // The new worker holds nothing: the model at the address loads again (picked
                // files wait for a pick), and the worker hook sends the last image again.
                s.model = match &self.model {
                    ModelState::Wanted(wish) => ModelState::Wanted(wish.clone()),
                    _ => ModelState::Wanted(ModelWish::Url(s.params.model.clone())),
                };
            }
            Action::ModelRequested { id, name } => {
                s.model = ModelState::Loading {
                    id,
                    name,
                    progress: Progress::start(),
                };
                s.model_error = None;
            }
            Action::ImageRequested { id, name } => {
                s.image_pending = Some((id, name));
                s.image_error = None;
            }
            Action::ImageFailed(message) => {
                s.image_pending = None;
                s.image_error = Some(message.clone());
                s.error(message);
            }
            Action::ImageReady {
                id,
                picture,
                thumb,
                original_hw,
            } => {
                let Some((_, name)) = s.image_pending.take().filter(|(p, _)| *p == id) else {
                    return self; // an older image finished after a newer one was picked
                };
                // A new picture after a result: explain it the same way straight away; the
                // first picture of a result file is the one it was made for.
                if s.viewer.is_some() {
                    s.result_image = id;
                } else if s.result.is_some() && s.run == RunState::Idle {
                    s.run = RunState::Wanted;
                }
                s.image = Some(Rc::new(LoadedImage {
                    id,
                    name,
                    picture,
                    thumb,
                    original_hw,
                }));
                s.check_file_image();
            }
            Action::RunRequested { id, image } => {
                s.run = RunState::Running {
                    id,
                    image,
                    progress: Progress::start(),
                };
                s.run_error = None;
            }
            Action::Worker(response) => s.apply(response),
            Action::WorkerDied(message) => {
                s.worker_error = Some(message.clone());
                s.error(message);
                s.model = ModelState::Idle;
                s.run = RunState::Idle;
                s.device = DeviceState::Starting;
            }
        }
        Rc::new(s)
    }
}

impl State {
    fn error(&mut self, message: String) {
        let n = self.last_error.as_ref().map_or(1, |(n, _)| n + 1);
        self.last_error = Some((n, message));
    }

    fn refuse(&mut self, message: String) {
        self.run = RunState::Idle;
        self.run_error = Some(message.clone());
        self.error(message);
    }

    fn edit(&mut self, edit: Edit) {
        let reload = matches!(edit, Edit::Quant(q) if q != self.params.quant);
        // A new query patch or block for the attention view needs the worker, and so does the
        // redundancy view for a result without its maps.
        let attention = matches!(edit, Edit::AttentionAt(_) | Edit::Block(_));
        let redundancy = matches!(edit, Edit::View(View::Redundancy));
        self.params.apply(edit);
        let lacking = match &self.result {
            // A result file has what it has until the user runs live.
            Some(_) if self.viewer.is_some() => false,
            Some(_) if attention => true,
            Some(r) if redundancy => self.params.redundancy() && r.explanation.redundancy.is_none(),
            _ => false,
        };
        if lacking && self.run == RunState::Idle {
            self.run_asked();
        }
        // A model from this address reloads at the new precision; files wait for a pick.
        if reload
            && let ModelState::Ready(info) = &self.model
            && info.scheme != self.params.quant
            && is_from(info, &self.params.model)
        {
            self.model = ModelState::Wanted(ModelWish::Url(self.params.model.clone()));
        }
    }

    /// Leaves a result file for live runs: the worker starts (none ran while the file was
    /// shown) and the model at the address loads.
    fn go_live(&mut self) {
        if self.viewer.take().is_none() {
            return;
        }
        self.params.result = None;
        self.worker += 1;
        self.device = DeviceState::Starting;
        if self.model == ModelState::Idle {
            self.model = ModelState::Wanted(ModelWish::Url(self.params.model.clone()));
        }
    }

    /// A result file over an image of another size than its own would mislead: say so.
    fn check_file_image(&mut self) {
        let (Some(run), Some(image)) = (&self.result, &self.image) else {
            return;
        };
        if self.viewer.is_none() || run.original_hw == image.original_hw {
            return;
        }
        let ([h, w], [ih, iw]) = (run.original_hw, image.original_hw);
        self.warnings.push(format!(
            "The result file was made for a {w}×{h} image, and this one is {iw}×{ih}: its maps may not fit it."
        ));
    }

    /// The controls take a result file's query, method and size: what a live run repeats.
    fn show_file(&mut self, run: &RunResult) {
        let e = &run.explanation;
        let single = e.cls_surgery.is_empty();
        if single {
            self.params.mode = Mode::Text;
            self.params.text = e.labels.concat();
        } else {
            self.params.mode = Mode::Labels;
            self.params.labels = e.labels.join(",");
        }
        self.params.method = run.method;
        self.params.size = run.input_hw;
    }

    fn run_asked(&mut self) {
        match self.params.query() {
            None => self.refuse("Nothing to explain: type a text, or at least one label.".into()),
            Some(Err(message)) => self.refuse(message),
            Some(Ok(_)) if self.image.is_none() => self.refuse("Pick an image first.".into()),
            Some(Ok(_)) if self.model_info().is_none() => self.refuse("Load a model first.".into()),
            Some(Ok(_)) => {
                self.run = RunState::Wanted;
                self.run_error = None;
            }
        }
    }

    fn apply(&mut self, response: Response) {
        match response {
            Response::Device {
                kind,
                note,
                threads,
            } => {
                self.device = DeviceState::Ready {
                    kind,
                    note,
                    threads,
                }
            }
            Response::DeviceLost { reason } => {
                self.device = DeviceState::Ready {
                    kind: DeviceKind::Webgpu,
                    note: Some(format!(
                        "The GPU device was lost ({reason}). The next run starts it again and \
                         reloads the model from the cache."
                    )),
                    threads: 1,
                };
            }
            Response::Progress {
                id,
                task,
                done,
                total,
            } => {
                let update = Progress {
                    task: Some(task),
                    done,
                    total,
                };
                match (&mut self.model, &mut self.run) {
                    (
                        ModelState::Loading {
                            id: m, progress, ..
                        },
                        _,
                    ) if *m == id => *progress = update,
                    (
                        _,
                        RunState::Running {
                            id: r, progress, ..
                        },
                    ) if *r == id => *progress = update,
                    _ => {}
                }
            }
            Response::ModelReady { id, info } => {
                if matches!(self.model, ModelState::Loading { id: m, .. } if m == id) {
                    self.model = ModelState::Ready(Rc::new(info));
                }
            }
            // Handled by the link; the image arrives as Action::ImageReady, with its pixels.
            Response::Listening | Response::Image { .. } => {}
            Response::Result { id, run } => {
                if let RunState::Running { id: r, image, .. } = self.run
                    && r == id
                {
                    self.run = RunState::Idle;
                    self.result_image = image;
                    if self.selected >= run.explanation.labels.len() {
                        self.selected = 0;
                    }
                    self.result = Some(Rc::new(*run));
                }
            }
            Response::Failed { id, scope, message } => self.failed(id, scope, message),
            Response::Cache { bytes, urls } => {
                self.cache = CacheState {
                    bytes,
                    urls,
                    known: true,
                }
            }
        }
    }

    fn failed(&mut self, id: u64, scope: Scope, message: String) {
        match scope {
            Scope::Device => {
                self.device = DeviceState::Failed(message.clone());
                self.error(message);
            }
            Scope::Model => {
                if matches!(self.model, ModelState::Loading { id: m, .. } if m == id) {
                    self.model = ModelState::Idle;
                    self.model_error = Some(message.clone());
                    // A run that waited for this model will not happen.
                    if self.run == RunState::Wanted {
                        self.run = RunState::Idle;
                    }
                    self.error(message);
                }
            }
            Scope::Image => {
                if self.image_pending.as_ref().is_some_and(|(p, _)| *p == id) {
                    self.image_pending = None;
                    self.image_error = Some(message.clone());
                    self.error(message);
                }
            }
            Scope::Explain => {
                if matches!(self.run, RunState::Running { id: r, .. } if r == id) {
                    self.refuse(message);
                }
            }
            Scope::Cache | Scope::Protocol => {
                self.run_error = Some(message.clone());
                self.error(message);
            }
        }
    }
}

/// Whether `info` is the model at `address` (the worker names it by its absolute URL).
fn is_from(info: &ModelInfo, address: &str) -> bool {
    info.name.ends_with(address.trim_start_matches("./"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clip_core::weights::pack::Scheme;

    const SAMPLE: &str = "www/samples/astronaut.jpg";

    fn reduce(state: State, action: Action) -> State {
        (*Rc::new(state).reduce(action)).clone()
    }

    fn fresh() -> State {
        State::new(Params::default(), vec![], SAMPLE)
    }

    fn info(scheme: Scheme) -> ModelInfo {
        ModelInfo {
            name: "http://h/models/tiny".into(),
            architecture: "ViT-B/16".into(),
            bytes: 1.0,
            scheme,
            sizes: vec![],
            cached: false,
            download_ms: 0.0,
            upload_ms: 0.0,
            patch: 16,
            blocks: 12,
            max_side: 640,
            memory_bytes: 0.0,
        }
    }

    fn file_result(labels: &[&str]) -> Rc<RunResult> {
        use clip_core::input::query::Method;
        use clip_core::output::document::{ExplainDocument, Provenance, RESULT_VERSION};
        use clip_core::output::explanation::Explanation;
        let n = labels.len();
        let explanation = Explanation {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            grid: [1, 1],
            similarity: vec![vec![0.0; n]],
            logits: vec![vec![0.0; n]],
            logit_scale: 100.0,
            cls_scores: vec![1.0 / n as f32; n],
            cls_surgery: vec![0.0; n],
            points: Default::default(),
            combined: false,
            truncated: vec![],
            tokens: vec![],
            attention: None,
            redundancy: None,
        };
        Rc::new(RunResult::precomputed(ExplainDocument {
            provenance: Provenance {
                version: RESULT_VERSION,
                model: "tiny-clip".into(),
                architecture: "ViT-B/16".into(),
                quant: Scheme::F32,
                method: Method::Raw,
                image: "a.png".into(),
            },
            size: [224, 320],
            image_hw: [10, 20],
            explanation,
        }))
    }

    fn image_ready(s: State, id: u64) -> State {
        let s = reduce(
            s,
            Action::ImageRequested {
                id,
                name: "a.png".into(),
            },
        );
        let picture = Rc::new(crate::render::Picture::new(1, 1, vec![0; 4]).unwrap());
        reduce(
            s,
            Action::ImageReady {
                id,
                picture: picture.clone(),
                thumb: picture,
                original_hw: [10, 20],
            },
        )
    }

    #[test]
    fn a_result_file_is_shown_without_worker_or_model_until_run_live() {
        let (params, _) =
            Params::from_pairs([("result", "r.json"), ("image", "a.png"), ("labels", "x,y")]);
        let s = State::new(params, vec![], SAMPLE);
        assert_eq!(s.viewer, Some(Viewer::Wanted("r.json".into())));
        assert_eq!(
            (s.run.clone(), s.model.clone()),
            (RunState::Idle, ModelState::Idle)
        );
        let s = reduce(s, Action::ResultRequested);
        let s = image_ready(s, 1);
        // The file's query, method and size become the controls'; the result is the image's.
        let s = reduce(s, Action::ResultFetched(Ok(file_result(&["cat", "dog"]))));
        assert_eq!(s.viewer, Some(Viewer::Shown));
        assert_eq!(s.params.labels, "cat,dog");
        assert_eq!(s.params.size, [224, 320]);
        assert!(s.shown_result().is_some());
        assert_eq!(s.run, RunState::Idle);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // Views that would need the worker do not start it.
        let s = reduce(s, Action::Edit(Edit::View(View::Redundancy)));
        assert_eq!((s.run.clone(), s.worker), (RunState::Idle, 1));
        // Run live: a worker, the model at the address, a run; the address loses `result`.
        let live = reduce(s.clone(), Action::RunLive);
        assert_eq!(live.viewer, None);
        assert_eq!(live.params.result, None);
        assert_eq!(live.worker, 2);
        assert_eq!(live.run, RunState::Wanted);
        assert_eq!(
            live.model,
            ModelState::Wanted(ModelWish::Url(default_model().into()))
        );
        // Another picture is for a live run too.
        let other = reduce(s, Action::OpenImage(ImageSource::Url("b.png".into())));
        assert_eq!((other.viewer.clone(), other.worker), (None, 2));
    }

    #[test]
    fn a_result_file_over_an_image_of_another_size_is_said() {
        let (params, _) = Params::from_pairs([("result", "r.json"), ("image", "a.png")]);
        let s = State::new(params, vec![], SAMPLE);
        let s = reduce(s, Action::ResultFetched(Ok(file_result(&["cat", "dog"]))));
        assert!(s.warnings.is_empty());
        let mut s = image_ready(s, 1);
        assert!(s.warnings.is_empty(), "same size: {:?}", s.warnings);
        s.image = None;
        s.result = None;
        let s = reduce(s, Action::ResultFetched(Ok(file_result(&["cat", "dog"]))));
        let s = reduce(
            s,
            Action::ImageRequested {
                id: 2,
                name: "b.png".into(),
            },
        );
        let picture = Rc::new(crate::render::Picture::new(1, 1, vec![0; 4]).unwrap());
        let s = reduce(
            s,
            Action::ImageReady {
                id: 2,
                picture: picture.clone(),
                thumb: picture,
                original_hw: [30, 40],
            },
        );
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("made for a 20×10 image, and this one is 40×30"));
    }

    #[test]
    fn an_unreadable_result_file_is_said_and_a_late_one_ignored() {
        let (params, _) = Params::from_pairs([("result", "r.json")]);
        let s = State::new(params, vec![], SAMPLE);
        let s = reduce(
            s,
            Action::ResultFetched(Err("r.json is not a result".into())),
        );
        assert_eq!(s.viewer, Some(Viewer::Failed));
        assert_eq!(s.run_error.as_deref(), Some("r.json is not a result"));
        assert!(s.last_error.is_some());
        let live = reduce(s, Action::RunLive);
        let late = reduce(
            live,
            Action::ResultFetched(Ok(file_result(&["cat", "dog"]))),
        );
        assert!(late.result.is_none());
    }

    #[test]
    fn stale_results_and_failures_are_ignored() {
        let mut s = fresh();
        s = reduce(s, Action::RunRequested { id: 2, image: 1 });
        let failed = |id| {
            Action::Worker(Response::Failed {
                id,
                scope: Scope::Explain,
                message: "boom".into(),
            })
        };
        s = reduce(s, failed(1));
        assert!(
            s.run_error.is_none(),
            "a failure of request 1 must not touch request 2"
        );
        s = reduce(s, failed(2));
        assert_eq!(s.run_error.as_deref(), Some("boom"));
        assert_eq!(s.last_error, Some((1, "boom".into())));
        assert_eq!(s.run, RunState::Idle);
    }

    #[test]
    fn a_failed_model_load_keeps_the_message_and_allows_another() {
        let mut s = fresh();
        s = reduce(
            s,
            Action::ModelRequested {
                id: 5,
                name: "m".into(),
            },
        );
        s = reduce(
            s,
            Action::Worker(Response::Failed {
                id: 5,
                scope: Scope::Model,
                message: "404".into(),
            }),
        );
        assert_eq!(s.model, ModelState::Idle);
        assert_eq!(s.model_error.as_deref(), Some("404"));
        s = reduce(
            s,
            Action::ModelRequested {
                id: 6,
                name: "m".into(),
            },
        );
        assert!(s.model_error.is_none());
    }

    #[test]
    fn the_url_contract_wants_a_run_only_with_image_and_query() {
        let wanted = |pairs: &[(&str, &str)]| {
            let (p, _) = Params::from_pairs(pairs.iter().copied());
            State::new(p, vec![], SAMPLE).run == RunState::Wanted
        };
        assert!(wanted(&[("image", "a.png"), ("labels", "cat")]));
        assert!(!wanted(&[("image", "a.png"), ("labels", " ")]));
        assert!(!wanted(&[("labels", "cat")]));
    }

    #[test]
    fn edits_apply_to_the_current_state_one_after_another() {
        // Two edits dispatched before any re-render: neither is lost (each applies to the
        // state the previous one left, not to a copy taken when the callback was made).
        let mut s = fresh();
        s = reduce(s, Action::Edit(Edit::Labels("cat, dog".into())));
        s = reduce(s, Action::Edit(Edit::Opacity(0.3)));
        assert_eq!(s.params.labels, "cat, dog");
        assert_eq!(s.params.opacity, 0.3);
        s = reduce(s, Action::Edit(Edit::Opacity(7.0)));
        assert_eq!(s.params.opacity, 1.0);
    }

    #[test]
    fn a_run_is_refused_with_the_reason_or_wanted() {
        let mut s = fresh();
        s = reduce(s, Action::Run);
        assert_eq!(s.run_error.as_deref(), Some("Pick an image first."));
        s = reduce(s, Action::Edit(Edit::Labels("cat, cat".into())));
        s = reduce(s, Action::Run);
        assert!(
            s.run_error.as_deref().unwrap().contains("given twice"),
            "{s:?}"
        );
        s.image = Some(Rc::new(LoadedImage {
            id: 1,
            name: "a".into(),
            picture: Rc::new(Picture::new(1, 1, vec![0; 4]).unwrap()),
            thumb: Rc::new(Picture::new(1, 1, vec![0; 4]).unwrap()),
            original_hw: [1, 1],
        }));
        s.model = ModelState::Ready(Rc::new(info(Scheme::Int8)));
        s = reduce(s, Action::Edit(Edit::Labels("cat, dog".into())));
        s = reduce(s, Action::Run);
        assert_eq!(
            (s.run.clone(), s.run_error.clone()),
            (RunState::Wanted, None)
        );
    }

    #[test]
    fn a_typed_size_is_taken_only_if_the_model_and_device_allow_it() {
        let mut s = fresh();
        s.model = ModelState::Ready(Rc::new(info(Scheme::Int8))); // patch 16, up to 640
        s = reduce(s, Action::TypeSize("320x480".into()));
        assert_eq!((s.params.size, s.size_error.clone()), ([320, 480], None));
        s = reduce(s, Action::TypeSize("704".into()));
        assert_eq!(s.params.size, [320, 480]);
        assert!(s.size_error.as_deref().unwrap().contains("At most 640"));
        s = reduce(s, Action::TypeSize("330".into()));
        assert!(s.size_error.as_deref().unwrap().contains("multiples of 16"));
        s = reduce(s, Action::TypeSize("huge".into()));
        assert!(s.size_error.as_deref().unwrap().contains("such as 448"));
    }

    #[test]
    fn a_new_precision_reloads_a_model_from_this_address() {
        let (p, _) = Params::from_pairs([("model", "models/tiny")]);
        let mut s = State::new(p, vec![], SAMPLE);
        s.model = ModelState::Ready(Rc::new(info(Scheme::Int8)));
        s = reduce(s, Action::Edit(Edit::Quant(Scheme::Q4)));
        assert_eq!(
            s.model,
            ModelState::Wanted(ModelWish::Url("models/tiny".into()))
        );
    }

    #[test]
    fn a_lost_device_is_said_and_a_restart_wants_the_model_again() {
        let mut s = fresh();
        s.model = ModelState::Ready(Rc::new(info(Scheme::Int8)));
        s = reduce(
            s,
            Action::Worker(Response::DeviceLost {
                reason: "destroyed".into(),
            }),
        );
        assert!(
            matches!(&s.device, DeviceState::Ready { note: Some(n), .. } if n.contains("destroyed"))
        );
        s.params.model = "models/tiny".into();
        s = reduce(s, Action::WorkerDied("gone".into()));
        s = reduce(s, Action::RestartWorker);
        assert_eq!(s.worker, 2);
        assert_eq!(
            s.model,
            ModelState::Wanted(ModelWish::Url("models/tiny".into()))
        );
    }

    #[test]
    fn cached_models_are_named_by_folder_or_file() {
        let cache = CacheState {
            urls: [
                "https://huggingface.co/openai/clip-vit-base-patch16/resolve/refs%2Fpr%2F10/config.json",
                "https://huggingface.co/openai/clip-vit-base-patch16/resolve/refs%2Fpr%2F10/model.safetensors",
                "http://127.0.0.1:8080/model/manifest.json",
                "http://127.0.0.1:8080/model/shard-000.bin",
                "http://127.0.0.1:8080/weights/ViT-B-16.safetensors",
                "http://127.0.0.1:8080/www/tokenizer.json",
            ]
            .map(String::from)
            .into(),
            ..CacheState::default()
        };
        assert_eq!(
            cache.models(),
            ["clip-vit-base-patch16", "model", "ViT-B-16.safetensors"]
        );
    }
}
