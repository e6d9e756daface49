//! One component (or stateless view function) per file, each taking data and callbacks.

pub mod camera;
pub mod header;
pub mod heatmap;
pub mod image_panel;
pub mod model_panel;
pub mod notices;
pub mod progress;
pub mod query_panel;
pub mod results;
pub mod segmentation;
pub mod url_field;
