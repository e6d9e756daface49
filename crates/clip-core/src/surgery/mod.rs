//! The paper's method on top of the model: feature surgery ([`feature`], §3.3), the prompt
//! ensembles ([`prompts`]), the text features kept per model ([`bank`]), the whole
//! explanation ([`explain`]) and open-vocabulary segmentation ([`segment`]). Architecture
//! surgery (§3.2) lives in the model itself ([`crate::model::attention`],
//! [`crate::model::encoder`]).

pub mod bank;
pub mod explain;
pub mod feature;
pub mod prompts;
pub mod segment;
