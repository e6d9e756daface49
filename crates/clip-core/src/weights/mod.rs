//! Where weights come from and how they travel: host tensors, the [`source::WeightSource`] the
//! model loads through, the one description of every tensor name ([`tree`]), checkpoints in
//! Hugging Face or OpenAI naming, random init, block quantization, the sharded weight pack, and
//! the one loading pipeline ([`load`]) that decides what a model address holds.
//!
//! ```text
//! address ──► load (ModelFiles: paths, or fetch + Cache Storage)
//!              ├─ pack: manifest.json → shards, each checked ───────────────► Pack
//!              ├─ checkpoint, kept as is ─────────────────────────────────────► Checkpoint
//!              └─ checkpoint, quantized on load: stream ─► encode ─► assemble ► Pack
//! ```
//! Everything here is device-free; the model uploads what a [`source::WeightSource`] hands
//! out.

pub mod address;
pub mod checkpoint;
pub mod gptq;
pub mod host;
pub mod load;
pub mod pack;
pub mod quant;
pub mod random;
pub mod source;
pub mod stream;
pub mod tree;
