//! The app's one state and its reducer: every worker message and user action becomes an
//! [`Action`]; side effects (messages to the worker, the address bar, events) live in the
//! components, never here.

use std::rc::Rc;

use yew::Reducible;

use crate::params::Params;
use crate::protocol::{DeviceKind, ModelInfo, Response, RunResult, Scope, Task};
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
    /// In use; `note` says why it is not WebGPU, when it is not.
    Ready {
        /// Which.
        kind: DeviceKind,
        /// Fallback explanation.
        note: Option<String>,
    },
    /// None usable.
    Failed(String),
}

/// The model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// Nothing asked for yet.
    Idle,
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

/// The explanation in flight.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Nothing running.
    Idle,
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

/// Everything the UI shows.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The URL contract's values (the controls' values).
    pub params: Params,
    /// Problems with the address's parameters.
    pub warnings: Vec<String>,
    /// The device.
    pub device: DeviceState,
    /// The model.
    pub model: ModelState,
    /// Last model error (kept until the next load).
    pub model_error: Option<String>,
    /// Id and name of the image being decoded.
    pub image_pending: Option<(u64, String)>,
    /// The image shown.
    pub image: Option<Rc<LoadedImage>>,
    /// Last image error.
    pub image_error: Option<String>,
    /// The explanation in flight.
    pub run: RunState,
    /// Last explanation error.
    pub run_error: Option<String>,
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
    /// Run as soon as model and image are ready (URL contract; new image after a run).
    pub autorun: bool,
    /// The worker died (message); the UI offers a restart.
    pub worker_error: Option<String>,
}

impl State {
    /// Initial state from the address's parameters.
    pub fn new(params: Params, warnings: Vec<String>) -> Self {
        let autorun = params.image.is_some() && params.query().is_some();
        Self {
            params,
            warnings,
            device: DeviceState::Starting,
            model: ModelState::Idle,
            model_error: None,
            image_pending: None,
            image: None,
            image_error: None,
            run: RunState::Idle,
            run_error: None,
            result: None,
            result_image: 0,
            last_error: None,
            selected: 0,
            cache: CacheState::default(),
            autorun,
            worker_error: None,
        }
    }

    /// The model, when ready.
    pub fn model_info(&self) -> Option<&ModelInfo> {
        match &self.model {
            ModelState::Ready(info) => Some(info),
            _ => None,
        }
    }

    /// Whether a Run can be sent now.
    pub fn can_run(&self) -> bool {
        self.model_info().is_some() && self.image.is_some() && self.worker_error.is_none()
    }
}

/// Everything that changes the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The controls changed.
    SetParams(Params),
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
    /// The page refused to send one (e.g. no labels).
    RunRefused(String),
    /// A worker message (other than `Image`, which carries pixels).
    Worker(Response),
    /// Show label `i` large.
    Select(usize),
    /// The worker died.
    WorkerDied(String),
    /// A new worker was started.
    WorkerRestarted,
    /// Hide the address warnings.
    DismissWarnings,
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::SetParams(params) => s.params = params,
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
                // A new picture after a result: explain it the same way straight away.
                s.autorun |= s.result.is_some();
                s.image = Some(Rc::new(LoadedImage {
                    id,
                    name,
                    picture,
                    thumb,
                    original_hw,
                }));
            }
            Action::RunRequested { id, image } => {
                s.run = RunState::Running {
                    id,
                    image,
                    progress: Progress::start(),
                };
                s.run_error = None;
                s.autorun = false;
            }
            Action::RunRefused(message) => {
                s.run_error = Some(message.clone());
                s.autorun = false;
                s.error(message);
            }
            Action::Worker(response) => s.apply(response),
            Action::Select(i) => s.selected = i,
            Action::WorkerDied(message) => {
                s.worker_error = Some(message.clone());
                s.error(message);
                s.model = ModelState::Idle;
                s.run = RunState::Idle;
                s.device = DeviceState::Starting;
            }
            Action::WorkerRestarted => s.worker_error = None,
            Action::DismissWarnings => s.warnings.clear(),
        }
        Rc::new(s)
    }
}

impl State {
    fn error(&mut self, message: String) {
        let n = self.last_error.as_ref().map_or(1, |(n, _)| n + 1);
        self.last_error = Some((n, message));
    }

    fn apply(&mut self, response: Response) {
        match response {
            Response::Device { kind, note } => self.device = DeviceState::Ready { kind, note },
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
                match &mut self.model {
                    ModelState::Loading {
                        id: m, progress, ..
                    } if *m == id => *progress = update,
                    _ => {
                        if let RunState::Running {
                            id: r, progress, ..
                        } = &mut self.run
                            && *r == id
                        {
                            *progress = update;
                        }
                    }
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
                    let labels = run.explanation.labels.len();
                    if self.selected >= labels {
                        self.selected = 0;
                    }
                    self.result = Some(Rc::new(*run));
                }
            }
            Response::Failed { id, scope, message } => match scope {
                Scope::Device => {
                    self.device = DeviceState::Failed(message.clone());
                    self.error(message);
                }
                Scope::Model => {
                    if matches!(self.model, ModelState::Loading { id: m, .. } if m == id) {
                        self.model = ModelState::Idle;
                        self.model_error = Some(message.clone());
                        self.autorun = false;
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
                        self.run = RunState::Idle;
                        self.run_error = Some(message.clone());
                        self.error(message);
                    }
                }
                Scope::Cache | Scope::Protocol => {
                    self.run_error = Some(message.clone());
                    self.error(message);
                }
            },
            Response::Cache { bytes, urls } => {
                self.cache = CacheState {
                    bytes,
                    urls,
                    known: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduce(state: State, action: Action) -> State {
        (*Rc::new(state).reduce(action)).clone()
    }

    #[test]
    fn stale_results_and_failures_are_ignored() {
        let mut s = State::new(Params::default(), vec![]);
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
        let mut s = State::new(Params::default(), vec![]);
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
    fn the_url_contract_arms_autorun_only_with_image_and_query() {
        let (p, _) = Params::from_pairs([("image", "a.png"), ("labels", "cat")]);
        assert!(State::new(p, vec![]).autorun);
        let (p, _) = Params::from_pairs([("image", "a.png"), ("labels", " ")]);
        assert!(!State::new(p, vec![]).autorun);
        let (p, _) = Params::from_pairs([("labels", "cat")]);
        assert!(!State::new(p, vec![]).autorun);
    }
}
