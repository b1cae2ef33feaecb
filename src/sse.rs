//! The Server-Sent Events wire format: frames, envelopes and payloads.
//!
//! Owns every byte of the stream body that is not HTTP headers: the
//! `event:` / `id:` / `data:` lines, the `{type, ts, payload}` envelope and
//! the payload key order of the upstream contract (§2). Pure: builds bytes,
//! never writes to a socket or reads the store. Rows are serialized once by
//! the hub thread; each client thread only adds its own `id:` line.
//!
//! Architecture Invariant: only this module formats `data:` lines, because
//! one place must decide what the upstream Live tab parses.

use std::io::{self, Write};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::burn::Burn;
use crate::store::{EventRow, ToolRow};
use crate::time::format_ts_utc;
use crate::watcher::Watcher;

/// Seconds between `burn_tick` frames (upstream's advertised interval).
pub const BURN_INTERVAL_SECS: f64 = 5.0;

/// The heartbeat: an SSE comment. Sent after 15 s without a write so idle
/// proxies keep the stream open and a vanished client is noticed.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// Reconnect delay advised to browsers, in milliseconds: quick enough to
/// feel live, slow enough that a restart does not get a thundering herd.
pub const RETRY_MS: u32 = 2000;

/// Which watermark a frame moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new `usage_events` row.
    Event,
    /// A `usage_events` row sent before whose usage grew (a later copy of
    /// the same API response carried more output tokens). Our extension:
    /// upstream's client ignores the type; ours replaces the entry.
    EventUpdate,
    /// A `message_tool_mart` row.
    ToolCall,
}

impl Kind {
    /// The SSE `event:` name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::EventUpdate => "event_update",
            Kind::ToolCall => "tool_call",
        }
    }
}

/// A row serialized once and shared by every client.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Which watermark it moves.
    pub kind: Kind,
    /// The row id (event id or tool-call id).
    pub row_id: i64,
    /// `data: {envelope}\n\n`.
    pub data: Arc<[u8]>,
}

fn envelope(kind: &str, ts: &str, payload: Value) -> Vec<u8> {
    let mut env = Map::new();
    env.insert("type".into(), Value::from(kind));
    env.insert("ts".into(), Value::from(ts));
    env.insert("payload".into(), payload);
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, &Value::Object(env)).expect("serializing a Value cannot fail");
    out.extend_from_slice(b"\n\n");
    out
}

/// The `event` payload, in upstream's key order (plus `provider`).
pub fn event_payload(r: &EventRow) -> Value {
    json!({
        "id": r.id, "ts": r.ts, "project_id": r.project_id, "session_id": r.session_id,
        "model": r.model, "cost_usd": r.cost_usd, "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens, "cache_read_tokens": r.cache_read_tokens,
        "cache_create_tokens": r.cache_create_tokens, "cost_source": r.cost_source,
        "project_slug": r.project_slug, "project_name": r.project_name, "provider": r.provider,
    })
}

/// The `tool_call` payload, in upstream's key order.
pub fn tool_payload(r: &ToolRow) -> Value {
    json!({
        "id": r.id, "ts": r.ts, "project_id": r.project_id, "session_id": r.session_id,
        "tool_name": r.tool_name, "file_path": r.file_path, "byte_count": r.byte_count,
        "call_index": r.call_index, "project_slug": r.project_slug, "project_name": r.project_name,
    })
}

/// Serializes a usage-event row.
pub fn event_frame(r: &EventRow) -> Frame {
    Frame {
        kind: Kind::Event,
        row_id: r.id,
        data: envelope("event", &r.ts, event_payload(r)).into(),
    }
}

/// Serializes a corrected usage-event row.
pub fn event_update_frame(r: &EventRow) -> Frame {
    Frame {
        kind: Kind::EventUpdate,
        row_id: r.id,
        data: envelope("event_update", &r.ts, event_payload(r)).into(),
    }
}

/// Serializes a tool-call row.
pub fn tool_frame(r: &ToolRow) -> Frame {
    Frame {
        kind: Kind::ToolCall,
        row_id: r.id,
        data: envelope("tool_call", &r.ts, tool_payload(r)).into(),
    }
}

/// The `burn` object of `/api/live/stats` and of `burn_tick` payloads.
pub fn burn_json(b: &Burn) -> Value {
    json!({
        "window_minutes": b.window_minutes, "window_cost": b.window_cost, "per_minute": b.per_minute,
        "per_hour": b.per_hour, "today_cost": b.today_cost, "month_to_date": b.month_to_date,
        "projected_month_end": b.projected_month_end, "ts": format_ts_utc(b.ts_ms),
    })
}

/// A complete `burn_tick` frame (no `id:` line: it moves no watermark).
pub fn burn_tick(b: &Burn) -> Arc<[u8]> {
    let mut out = b"event: burn_tick\n".to_vec();
    out.extend(envelope("burn_tick", &format_ts_utc(b.ts_ms), burn_json(b)));
    out.into()
}

/// A complete `ready` frame for a client starting at watermarks `(e, t)`.
pub fn ready(e: i64, t: i64, watcher: Watcher, now_ms: i64) -> Vec<u8> {
    let payload = json!({
        "watermarks": {"event_id": e, "tool_call_id": t},
        "watcher": {"running": watcher.json()},
        "burn_interval_seconds": BURN_INTERVAL_SECS,
    });
    let mut out = format!("event: ready\nid: {e}:{t}\n").into_bytes();
    out.extend(envelope("ready", &format_ts_utc(now_ms), payload));
    out
}

/// Writes a shared frame with the client's own watermarks as its `id:`.
pub fn write_frame(w: &mut impl Write, f: &Frame, e: i64, t: i64) -> io::Result<()> {
    write!(w, "event: {}\nid: {e}:{t}\n", f.kind.name())?;
    w.write_all(&f.data)
}

/// Parses a resume position `E:T` (the `Last-Event-ID` of our frames).
/// A bare `E` means tool calls from the start of the event's era are not
/// wanted, so it resumes tool calls at the live end (`None`).
pub fn parse_last_event_id(s: &str) -> Option<(i64, Option<i64>)> {
    let s = s.trim();
    let (e, t) = match s.split_once(':') {
        Some((e, t)) => (e, Some(t)),
        None => (s, None),
    };
    let e: i64 = e.trim().parse().ok().filter(|v| *v >= 0)?;
    let t = match t {
        Some(t) => Some(t.trim().parse().ok().filter(|v: &i64| *v >= 0)?),
        None => None,
    };
    Some((e, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EventRow {
        EventRow {
            id: 7,
            ts: "2025-11-01T00:00:00.000Z".into(),
            project_id: 1,
            session_id: "s".into(),
            model: "claude-opus-4-5".into(),
            cost_usd: 0.25,
            input_tokens: 1,
            output_tokens: 2,
            cache_read_tokens: 3,
            cache_create_tokens: 4,
            cost_source: "rate_card".into(),
            provider: "claude".into(),
            project_slug: Some("-p".into()),
            project_name: None,
        }
    }

    #[test]
    fn event_frame_is_the_upstream_shape_in_order() {
        let f = event_frame(&row());
        let mut out = Vec::new();
        write_frame(&mut out, &f, 7, 3).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split('\n');
        assert_eq!(lines.next(), Some("event: event"));
        assert_eq!(lines.next(), Some("id: 7:3"));
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        assert!(text.ends_with("\n\n"));
        assert!(data.starts_with(
            r#"{"type":"event","ts":"2025-11-01T00:00:00.000Z","payload":{"id":7,"ts":"#
        ));
        let keys: Vec<String> = serde_json::from_str::<Value>(data).unwrap()["payload"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "ts",
                "project_id",
                "session_id",
                "model",
                "cost_usd",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_create_tokens",
                "cost_source",
                "project_slug",
                "project_name",
                "provider"
            ]
        );
    }

    #[test]
    fn ready_and_burn_tick_frames() {
        let r = String::from_utf8(ready(5, 6, Watcher::Unknown, 0)).unwrap();
        assert!(r.starts_with("event: ready\nid: 5:6\ndata: {\"type\":\"ready\""));
        assert!(
            r.contains(r#""watcher":{"running":"unknown"},"burn_interval_seconds":5.0"#),
            "{r}"
        );
        let b = Burn {
            window_minutes: 5,
            window_cost: 1.0,
            per_minute: 0.2,
            per_hour: 12.0,
            today_cost: 1.0,
            month_to_date: 1.0,
            projected_month_end: 3.1,
            ts_ms: 0,
        };
        let t = String::from_utf8(burn_tick(&b).to_vec()).unwrap();
        assert!(t.starts_with("event: burn_tick\ndata: {\"type\":\"burn_tick\",\"ts\":\"1970-01-01T00:00:00.000000+00:00\""));
        assert!(!t.contains("\nid:"));
    }

    #[test]
    fn last_event_id_parsing() {
        assert_eq!(parse_last_event_id("12:34"), Some((12, Some(34))));
        assert_eq!(parse_last_event_id(" 12 "), Some((12, None)));
        assert_eq!(parse_last_event_id("x:1"), None);
        assert_eq!(parse_last_event_id("1:-1"), None);
        assert_eq!(parse_last_event_id(""), None);
    }
}
