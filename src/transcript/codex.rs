//! Codex rollout lines: `{"timestamp", "type", "payload"}` wrappers.
//!
//! `session_meta` gives the session id, `turn_context` the current model;
//! neither is stored as a message. `response_item` and `event_msg` lines are
//! messages. Usage comes from `event_msg` `token_count` lines: Codex writes
//! each count twice, so the billed tokens are the change in the cumulative
//! `total_token_usage` since the previous count in this file, and a zero
//! change is no event.

use std::collections::HashMap;

use serde_json::Value;

use super::text::{count, owned_str, str_field, tools_json, Summary};
use super::tools::{self, Item};
use super::{MessageRec, Record, Tokens, ToolResultRec, ToolUseRec, UsageRec};

/// Per-file Codex state.
#[derive(Debug, Default, Clone)]
pub(super) struct State {
    /// `session_meta.payload.id`.
    session_id: Option<String>,
    /// Latest `cwd` from `session_meta` or `turn_context`.
    cwd: Option<String>,
    /// Latest `turn_context.payload.model`.
    model: Option<String>,
    /// The previous cumulative `total_token_usage`, if any was seen.
    prev_total: Option<Counts>,
}

/// One Codex token usage object, as written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// `input_tokens` (cached included).
    input: i64,
    /// `cached_input_tokens`.
    cached: i64,
    /// `output_tokens` (reasoning included).
    output: i64,
    /// `reasoning_output_tokens`.
    reasoning: i64,
}

impl Counts {
    fn read(v: &Value) -> Counts {
        Counts {
            input: count(v.get("input_tokens")),
            cached: count(v.get("cached_input_tokens")),
            output: count(v.get("output_tokens")),
            reasoning: count(v.get("reasoning_output_tokens")),
        }
    }

    fn minus(self, o: Counts) -> Counts {
        Counts {
            input: self.input - o.input,
            cached: self.cached - o.cached,
            output: self.output - o.output,
            reasoning: self.reasoning - o.reasoning,
        }
    }

    fn any_negative(self) -> bool {
        self.input < 0 || self.cached < 0 || self.output < 0 || self.reasoning < 0
    }

    /// ccusage's mapping: cached input is a cache read, the rest is input.
    fn tokens(self) -> Tokens {
        Tokens {
            input: (self.input - self.cached).max(0),
            output: self.output,
            cache_read: self.cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: self.reasoning,
        }
    }
}

impl State {
    /// Handles one parsed line (a JSON object).
    pub(super) fn feed(&mut self, seq: u64, v: &Value, out: &mut Vec<Record>) {
        let Some(payload) = v.get("payload").filter(|p| p.is_object()) else {
            return;
        };
        let ts = str_field(v, "timestamp");
        match str_field(v, "type") {
            Some("session_meta") => {
                self.session_id = owned_str(payload, "id").or(self.session_id.take());
                self.cwd = owned_str(payload, "cwd").or(self.cwd.take());
                self.model = owned_str(payload, "model").or(self.model.take());
            }
            Some("turn_context") => {
                self.model = owned_str(payload, "model").or(self.model.take());
                self.cwd = owned_str(payload, "cwd").or(self.cwd.take());
            }
            Some("response_item") => self.response_item(seq, ts, v, payload, out),
            Some("event_msg") => self.event_msg(seq, ts, payload, out),
            _ => {}
        }
    }

    fn response_item(
        &mut self,
        seq: u64,
        ts: Option<&str>,
        line: &Value,
        payload: &Value,
        out: &mut Vec<Record>,
    ) {
        let kind = str_field(payload, "type").unwrap_or("");
        let role = match kind {
            "message" => str_field(payload, "role").unwrap_or("assistant"),
            "reasoning" | "function_call" | "custom_tool_call" | "local_shell_call"
            | "web_search_call" => "assistant",
            k if k.ends_with("_output") => "tool",
            _ => "system",
        };
        let mut text = Summary::default();
        match kind {
            "message" => push_texts(&mut text, payload.get("content")),
            "reasoning" => push_texts(&mut text, payload.get("summary")),
            "function_call" | "custom_tool_call" | "local_shell_call" => {
                text.push(&tools::codex_call_summary(payload))
            }
            k if k.ends_with("_output") => {
                text.push(&tools::codex_output(payload.get("output")).text)
            }
            "web_search_call" => {
                let query = payload
                    .get("action")
                    .and_then(|a| str_field(a, "query"))
                    .unwrap_or("");
                text.push(&format!("web_search {query}"));
            }
            _ => {}
        }
        let items = tools::codex_items(line);
        let names = tools::call_names(&items);
        out.push(self.message(
            seq,
            ts,
            role,
            text.finish(),
            tools_json(&names),
            Tokens::default(),
        ));

        let ts_text = ts.unwrap_or_default();
        let mut per_name: HashMap<&str, i64> = HashMap::new();
        for item in &items {
            match item {
                Item::Call(c) => {
                    let index = per_name.entry(c.name.as_str()).or_insert(0);
                    out.push(Record::ToolUse(ToolUseRec {
                        seq,
                        id: c.id.clone(),
                        ts: ts_text.to_owned(),
                        tool_name: c.name.clone(),
                        file_path: c.file_path.clone(),
                        byte_count: c.byte_count,
                        call_index: *index,
                        session_id: self.session_id.clone(),
                    }));
                    *index += 1;
                }
                Item::Output(o) => out.push(Record::ToolResult(ToolResultRec {
                    seq,
                    tool_use_id: o.tool_use_id.clone(),
                    ts: ts_text.to_owned(),
                    result_bytes: o.result_bytes,
                    duration_ms: o.duration_ms,
                    is_error: o.is_error,
                })),
            }
        }
    }

    fn event_msg(&mut self, seq: u64, ts: Option<&str>, payload: &Value, out: &mut Vec<Record>) {
        let kind = str_field(payload, "type").unwrap_or("");
        let role = match kind {
            "user_message" => "user",
            "agent_message" | "agent_reasoning" => "assistant",
            _ => "system",
        };
        let mut text = Summary::default();
        for key in ["message", "text", "last_agent_message"] {
            text.push(str_field(payload, key).unwrap_or(""));
        }
        let used = if kind == "token_count" {
            self.token_delta(payload.get("info"))
        } else {
            None
        };
        out.push(self.message(
            seq,
            ts,
            role,
            text.finish(),
            "[]".to_owned(),
            used.unwrap_or_default(),
        ));
        if let Some(tokens) = used {
            out.push(Record::Usage(UsageRec {
                key: format!("codex:{seq}"),
                seq,
                ts: ts.unwrap_or_default().to_owned(),
                model: self.model.clone().unwrap_or_default(),
                speed: "standard".to_owned(),
                tokens,
                session_id: self.session_id.clone(),
                is_sidechain: false,
            }));
        }
    }

    /// The tokens billed since the previous `token_count`, or `None` when
    /// nothing new was billed (the repeated count, or `info: null`).
    ///
    /// Uses the change in `total_token_usage`; if that total goes backwards
    /// (a new cumulative series), `last_token_usage` (else the new total) is
    /// taken as is. Without `total_token_usage`, `last_token_usage` is used.
    fn token_delta(&mut self, info: Option<&Value>) -> Option<Tokens> {
        let info = info.filter(|i| i.is_object())?;
        let read = |key: &str| info.get(key).filter(|u| u.is_object()).map(Counts::read);
        let last = read("last_token_usage");
        let used = match read("total_token_usage") {
            Some(total) => {
                let delta = total.minus(self.prev_total.unwrap_or_default());
                self.prev_total = Some(total);
                if delta.any_negative() {
                    last.unwrap_or(total)
                } else {
                    delta
                }
            }
            None => last?,
        };
        let tokens = used.tokens();
        (tokens.total() > 0).then_some(tokens)
    }

    fn message(
        &self,
        seq: u64,
        ts: Option<&str>,
        role: &str,
        content_text: String,
        tools_json: String,
        tokens: Tokens,
    ) -> Record {
        Record::Message(MessageRec {
            seq,
            ts: ts.map(str::to_owned),
            role: role.to_owned(),
            model: self.model.clone(),
            session_id: self.session_id.clone(),
            cwd: self.cwd.clone(),
            is_sidechain: false,
            uuid: None,
            parent_uuid: None,
            speed: "standard".to_owned(),
            content_text,
            tools_json,
            tokens,
        })
    }
}

/// Pushes the `text` of each item of a content or summary array.
fn push_texts(s: &mut Summary, items: Option<&Value>) {
    if let Some(items) = items.and_then(Value::as_array) {
        for item in items {
            s.push(str_field(item, "text").unwrap_or(""));
        }
    }
}
