//! Claude Code lines: `user`, `assistant` and `system` records.
//!
//! An API response with k content blocks is written as k `assistant` lines
//! sharing `message.id` and `requestId`, each with a copy of `usage` whose
//! `output_tokens` may still be partial on the early lines. Usage is therefore
//! keyed on `<message.id>:<requestId>` and the largest copy wins: it is
//! emitted when first seen and re-emitted whenever a later copy is larger.

use std::collections::HashMap;

use serde_json::Value;

use super::text::{count, owned_str, str_field, tools_json, Summary};
use super::tools::{self, Item};
use super::{MessageRec, Record, Tokens, ToolResultRec, ToolUseRec, UsageRec};

/// Claude's placeholder model for locally generated messages; never billed.
const SYNTHETIC_MODEL: &str = "<synthetic>";

/// Per-file Claude state.
#[derive(Debug, Default, Clone)]
pub(super) struct State {
    /// Largest [`Tokens::total`] emitted so far for each usage key.
    best: HashMap<String, i64>,
}

impl State {
    /// Handles one parsed line (a JSON object).
    pub(super) fn feed(&mut self, seq: u64, v: &Value, out: &mut Vec<Record>) {
        let kind = match str_field(v, "type") {
            Some(k @ ("user" | "assistant" | "system")) => k,
            _ => return,
        };
        let ts = str_field(v, "timestamp");
        let msg = v.get("message").filter(|m| m.is_object());
        let usage = msg.and_then(|m| m.get("usage")).filter(|u| u.is_object());
        let tokens = usage.map(usage_tokens).unwrap_or_default();
        let speed = usage
            .and_then(|u| str_field(u, "speed"))
            .filter(|s| !s.is_empty())
            .unwrap_or("standard");
        let model = msg.and_then(|m| owned_str(m, "model"));
        let session_id = owned_str(v, "sessionId");
        let is_sidechain = v.get("isSidechain").and_then(Value::as_bool) == Some(true);
        let items = tools::claude_items(v);
        let names = tools::call_names(&items);

        if let Some(ts) = ts {
            out.push(Record::Message(MessageRec {
                seq,
                ts: Some(ts.to_owned()),
                role: msg
                    .and_then(|m| owned_str(m, "role"))
                    .unwrap_or_else(|| kind.to_owned()),
                model: model.clone(),
                session_id: session_id.clone(),
                cwd: owned_str(v, "cwd"),
                is_sidechain,
                uuid: owned_str(v, "uuid"),
                parent_uuid: owned_str(v, "parentUuid"),
                speed: speed.to_owned(),
                content_text: summary(v, msg),
                tools_json: tools_json(&names),
                tokens,
            }));
        }

        let billable = kind == "assistant"
            && usage.is_some()
            && model.as_deref() != Some(SYNTHETIC_MODEL)
            && v.get("isApiErrorMessage").and_then(Value::as_bool) != Some(true)
            && tokens.total() > 0;
        if billable {
            let key = match (
                msg.and_then(|m| str_field(m, "id"))
                    .filter(|s| !s.is_empty()),
                str_field(v, "requestId").filter(|s| !s.is_empty()),
            ) {
                (Some(id), Some(req)) => format!("{id}:{req}"),
                _ => format!("line:{seq}"),
            };
            if self.is_new_best(&key, tokens.total()) {
                out.push(Record::Usage(UsageRec {
                    key,
                    seq,
                    ts: ts.unwrap_or_default().to_owned(),
                    model: model.clone().unwrap_or_default(),
                    speed: speed.to_owned(),
                    tokens,
                    session_id: session_id.clone(),
                    is_sidechain,
                }));
            }
        }

        let mut per_name: HashMap<&str, i64> = HashMap::new();
        for item in &items {
            match item {
                Item::Call(c) => {
                    let index = per_name.entry(c.name.as_str()).or_insert(0);
                    out.push(Record::ToolUse(ToolUseRec {
                        seq,
                        id: c.id.clone(),
                        ts: ts.unwrap_or_default().to_owned(),
                        tool_name: c.name.clone(),
                        file_path: c.file_path.clone(),
                        byte_count: c.byte_count,
                        call_index: *index,
                        session_id: session_id.clone(),
                    }));
                    *index += 1;
                }
                Item::Output(o) => out.push(Record::ToolResult(ToolResultRec {
                    seq,
                    tool_use_id: o.tool_use_id.clone(),
                    ts: ts.unwrap_or_default().to_owned(),
                    result_bytes: o.result_bytes,
                    duration_ms: o.duration_ms,
                    is_error: o.is_error,
                })),
            }
        }
    }

    /// Records `total` for `key` and says whether it beats what was emitted.
    fn is_new_best(&mut self, key: &str, total: i64) -> bool {
        match self.best.get_mut(key) {
            Some(best) if total <= *best => false,
            Some(best) => {
                *best = total;
                true
            }
            None => {
                self.best.insert(key.to_owned(), total);
                true
            }
        }
    }
}

/// Maps `message.usage`. The 5m/1h cache-write split comes from
/// `usage.cache_creation.ephemeral_{5m,1h}_input_tokens` when that object
/// is present and non-empty; otherwise all of `cache_creation_input_tokens`
/// counts as 5-minute writes (older versions wrote only that).
pub(super) fn usage_tokens(u: &Value) -> Tokens {
    let created = count(u.get("cache_creation_input_tokens"));
    let split = u.get("cache_creation").filter(|c| c.is_object()).map(|c| {
        (
            count(c.get("ephemeral_5m_input_tokens")),
            count(c.get("ephemeral_1h_input_tokens")),
        )
    });
    let (w5, w1h) = match split {
        Some((w5, w1h)) if w5 + w1h > 0 || created == 0 => (w5, w1h),
        _ => (created, 0),
    };
    Tokens {
        input: count(u.get("input_tokens")),
        output: count(u.get("output_tokens")),
        cache_read: count(u.get("cache_read_input_tokens")),
        cache_write_5m: w5,
        cache_write_1h: w1h,
        reasoning: 0,
    }
}

/// Plain-text summary of a line: text and thinking blocks, a `[Tool] target`
/// note per tool call, tool result text, or a system line's `content`.
fn summary(v: &Value, msg: Option<&Value>) -> String {
    let mut s = Summary::default();
    match msg.and_then(|m| m.get("content")) {
        Some(Value::String(text)) => s.push(text),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match str_field(b, "type") {
                    Some("text") => s.push(str_field(b, "text").unwrap_or("")),
                    Some("thinking") => s.push(str_field(b, "thinking").unwrap_or("")),
                    Some("tool_use") => s.push(&tool_use_note(b)),
                    Some("tool_result") => s.push(&tools::claude_result_text(b.get("content"))),
                    Some("image") => s.push("[image]"),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if msg.is_none() {
        s.push(str_field(v, "content").unwrap_or(""));
    }
    s.finish()
}

/// `[Name] target`, where target is the first of a few telling inputs.
fn tool_use_note(block: &Value) -> String {
    let name = str_field(block, "name").unwrap_or("?");
    let input = block.get("input").unwrap_or(&Value::Null);
    let target = [
        "file_path",
        "path",
        "notebook_path",
        "command",
        "pattern",
        "url",
        "query",
        "description",
    ]
    .iter()
    .find_map(|k| str_field(input, k).filter(|s| !s.is_empty()));
    match target {
        Some(t) => format!("[{name}] {t}"),
        None => format!("[{name}]"),
    }
}
