//! The Yew UI: one reducer ([`state`]), function components, and the link to the worker.
//! No tensor math happens here; pixels come from [`crate::render`].

mod app;
mod components;
pub mod dom;
mod hooks;
mod link;
pub mod state;

pub use app::App;
