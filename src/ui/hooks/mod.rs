//! The app's effects, as hooks: everything that reaches outside the state — the worker, the
//! address bar, `window.clipSurgery`, the clipboard. `app.rs` only composes them.

mod page;
mod worker;

pub use page::{use_address_bar, use_automation, use_online, use_paste};
pub use worker::{use_autoload, use_worker};
