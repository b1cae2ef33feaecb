//! stackunderflow-live: a sidecar daemon that streams coding-agent activity
//! (Claude Code, Codex) live over Server-Sent Events.
//!
//! The binary (`src/main.rs`) is glue; each module here owns one concern.
//! Read `docs/ARCHITECTURE.md` first: it maps the threads, the channels
//! between them and the invariants. In brief: a change feed (`follow`, or
//! the ingest writer) reads new rows from the `store` and hands them to the
//! `hub`, which serializes each row once (`sse`) and offers it to every
//! client's bounded queue; one `stream` thread per client writes them out.
//! `burn` and `latency` are the pure maths behind `/api/live/stats`;
//! `service` renders and installs the systemd/launchd files
//! (`install-service`).

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod burn;
pub mod detach;
pub mod devtools;
pub mod follow;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod latency;
pub mod logging;
pub mod pricing;
pub mod seed;
pub mod service;
pub mod sse;
pub mod state;
pub mod store;
pub mod stream;
pub mod sys;
pub mod time;
pub mod transcript;
pub mod usage;
pub mod watcher;
