//! What goes into an explanation: the query ([`query`]), the picture ([`preprocess`]: decoded,
//! resized as PIL does, normalised) and the text ([`tokenizer`]: OpenAI's CLIP tokenizer, text
//! cleaning included), plus the benchmarks' label sets ([`presets`]).

pub mod preprocess;
pub mod presets;
pub mod query;
pub mod tokenizer;
