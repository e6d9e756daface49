//! One component per file, each taking data and callbacks.

pub mod heatmap;
pub mod image_panel;
pub mod model_panel;
pub mod progress;
pub mod query_panel;
pub mod results;
pub mod url_field;
