//! stackunderflow-live: a sidecar daemon that streams coding-agent activity
//! (Claude Code, Codex) live over Server-Sent Events.
//!
//! The binary (`src/main.rs`) is glue; the modules here own one concern each.
//! See `docs/ARCHITECTURE.md` for the thread map and invariants.

#![deny(missing_docs)]

pub mod pricing;
pub mod time;
pub mod transcript;
