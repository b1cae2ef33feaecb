//! Tool calls and tool results carried by one line, for both providers.
//!
//! This is the single extraction used by [`super::FileParser`] (which adds
//! offsets, timestamps text and call indexes) and by [`super::tool_events`]
//! (which adds the line's time in ms). It knows the upstream
//! `message_tool_mart` rules for `file_path` and `byte_count`.

use serde_json::Value;

use super::text::{byte_len, millis, owned_str, seconds_to_ms, str_field};

/// A tool call found on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    /// Claude `tool_use.id`; Codex `call_id`.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// File touched, or sub-agent type for `Task`/`Agent`.
    pub file_path: Option<String>,
    /// Size of the written payload, where the input says it.
    pub byte_count: Option<i64>,
}

/// A tool result found on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Output {
    /// The call it answers.
    pub tool_use_id: String,
    /// UTF-8 length of the result text.
    pub result_bytes: i64,
    /// Reported run time.
    pub duration_ms: Option<i64>,
    /// Whether the tool failed.
    pub is_error: bool,
}

/// One call or result, in the order the line holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Call(Call),
    Output(Output),
}

/// The tool names of the calls among `items`, in order (a line's `tools_json`).
pub(super) fn call_names(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Call(c) => Some(c.name.clone()),
            Item::Output(_) => None,
        })
        .collect()
}

/// Calls and results of a line of either format, recognised by shape: a
/// Codex line has `type: "response_item"` and a `payload`; a Claude line has
/// `message.content`.
pub(super) fn line_items(line: &Value) -> Vec<Item> {
    if str_field(line, "type") == Some("response_item") {
        codex_items(line)
    } else {
        claude_items(line)
    }
}

// ---------------------------------------------------------------- Claude --

/// Claude: `tool_use` blocks of `message.content`, and `tool_result` blocks
/// (the latter take their duration from the line's `toolUseResult` when the
/// line holds exactly one result, which is how Claude Code writes them).
pub(super) fn claude_items(line: &Value) -> Vec<Item> {
    let Some(blocks) = line
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let results = blocks
        .iter()
        .filter(|b| str_field(b, "type") == Some("tool_result"))
        .count();
    let line_duration = if results == 1 {
        line.get("toolUseResult")
            .and_then(|r| millis(r.get("durationMs")).or_else(|| millis(r.get("totalDurationMs"))))
    } else {
        None
    };
    let mut items = Vec::new();
    for block in blocks {
        match str_field(block, "type") {
            Some("tool_use") => {
                let (Some(id), Some(name)) = (owned_str(block, "id"), owned_str(block, "name"))
                else {
                    continue;
                };
                let input = block.get("input").unwrap_or(&Value::Null);
                items.push(Item::Call(Call {
                    file_path: claude_file_path(&name, input),
                    byte_count: claude_written_bytes(&name, input),
                    id,
                    name,
                }));
            }
            Some("tool_result") => {
                let Some(id) = owned_str(block, "tool_use_id") else {
                    continue;
                };
                items.push(Item::Output(Output {
                    tool_use_id: id,
                    result_bytes: byte_len(&claude_result_text(block.get("content"))),
                    duration_ms: line_duration,
                    is_error: block.get("is_error").and_then(Value::as_bool) == Some(true),
                }));
            }
            _ => {}
        }
    }
    items
}

/// Upstream's `file_path` rule: the sub-agent type for `Task` (and `Agent`,
/// its 2.1.x name), otherwise `input.file_path`, `input.path` or
/// `input.notebook_path`, first non-empty string wins.
fn claude_file_path(name: &str, input: &Value) -> Option<String> {
    let keys: &[&str] = if matches!(name, "Task" | "Agent") {
        &["subagent_type", "agent"]
    } else {
        &["file_path", "path", "notebook_path"]
    };
    keys.iter().find_map(|k| owned_str(input, k))
}

/// Upstream's `byte_count` rule for write-family tools: UTF-8 size of the
/// payload written. `None` for every other tool (the result size applies).
fn claude_written_bytes(name: &str, input: &Value) -> Option<i64> {
    let field = |key: &str| str_field(input, key).map(byte_len);
    match name {
        "Write" => field("content"),
        "Edit" => field("new_string"),
        "NotebookEdit" => field("new_source"),
        "MultiEdit" => {
            let sizes: Vec<i64> = input
                .get("edits")?
                .as_array()?
                .iter()
                .filter_map(|e| str_field(e, "new_string").map(byte_len))
                .collect();
            (!sizes.is_empty()).then(|| sizes.iter().sum())
        }
        _ => None,
    }
}

/// The text of a Claude `tool_result.content`: the string itself, or the
/// `text` fields of its blocks joined (images and other blocks add nothing).
pub(super) fn claude_result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks.iter().filter_map(|b| str_field(b, "text")).collect(),
        _ => String::new(),
    }
}

// ----------------------------------------------------------------- Codex --

/// Codex: calls and outputs of a `response_item` line.
pub(super) fn codex_items(line: &Value) -> Vec<Item> {
    let Some(payload) = line.get("payload") else {
        return Vec::new();
    };
    let call_id = || owned_str(payload, "call_id").or_else(|| owned_str(payload, "id"));
    match str_field(payload, "type") {
        Some("function_call") => {
            let (Some(id), Some(name)) = (call_id(), owned_str(payload, "name")) else {
                return Vec::new();
            };
            let args = str_field(payload, "arguments").unwrap_or("");
            let patch = (name == "apply_patch").then(|| patch_from_arguments(args));
            vec![codex_call(id, name, patch.as_deref())]
        }
        Some("custom_tool_call") => {
            let (Some(id), Some(name)) = (call_id(), owned_str(payload, "name")) else {
                return Vec::new();
            };
            let input = str_field(payload, "input").unwrap_or("");
            let patch = (name == "apply_patch").then_some(input);
            vec![codex_call(id, name, patch)]
        }
        Some("local_shell_call") => match call_id() {
            Some(id) => vec![codex_call(id, "local_shell".to_owned(), None)],
            None => Vec::new(),
        },
        Some("function_call_output" | "custom_tool_call_output" | "local_shell_call_output") => {
            let Some(id) = owned_str(payload, "call_id") else {
                return Vec::new();
            };
            let out = codex_output(payload.get("output"));
            vec![Item::Output(Output {
                tool_use_id: id,
                result_bytes: byte_len(&out.text),
                duration_ms: out.duration_ms,
                is_error: out.is_error,
            })]
        }
        _ => Vec::new(),
    }
}

fn codex_call(id: String, name: String, patch: Option<&str>) -> Item {
    Item::Call(Call {
        id,
        name,
        file_path: patch.and_then(first_patch_path),
        byte_count: patch.map(byte_len),
    })
}

/// The patch text of a `function_call` named `apply_patch`: its arguments are
/// a JSON object with an `input` (or `patch`) string, or the raw patch.
fn patch_from_arguments(args: &str) -> String {
    match serde_json::from_str::<Value>(args) {
        Ok(v) => str_field(&v, "input")
            .or_else(|| str_field(&v, "patch"))
            .unwrap_or("")
            .to_owned(),
        Err(_) => args.to_owned(),
    }
}

/// The first file named by an apply_patch envelope
/// (`*** Update File: p`, `*** Add File: p` or `*** Delete File: p`).
pub(super) fn first_patch_path(patch: &str) -> Option<String> {
    patch.lines().find_map(|l| {
        let l = l.trim_start();
        ["*** Update File:", "*** Add File:", "*** Delete File:"]
            .iter()
            .find_map(|prefix| l.strip_prefix(prefix))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
    })
}

/// What a Codex tool output says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CodexOutput {
    /// The command output or result text, without the metadata wrapper.
    pub text: String,
    /// `metadata.duration_seconds` or the `Wall time:` header, in ms.
    pub duration_ms: Option<i64>,
    /// Non-zero exit code, or `success: false`.
    pub is_error: bool,
}

/// Reads a Codex `output` field. Seen shapes: a JSON string
/// `{"output": text, "metadata": {"exit_code", "duration_seconds"}}`; plain
/// text with `Exit code: N` / `Wall time: X seconds` header lines; an object
/// `{content, success}`; or an array of content items with `text`.
pub(super) fn codex_output(output: Option<&Value>) -> CodexOutput {
    match output {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) if v.is_object() => codex_output_object(&v, s),
            _ => codex_plain_output(s),
        },
        Some(v @ Value::Object(_)) => codex_output_object(v, ""),
        Some(Value::Array(items)) => CodexOutput {
            text: items.iter().filter_map(|i| str_field(i, "text")).collect(),
            ..CodexOutput::default()
        },
        _ => CodexOutput::default(),
    }
}

fn codex_output_object(v: &Value, raw: &str) -> CodexOutput {
    let text = str_field(v, "output")
        .or_else(|| str_field(v, "content"))
        .unwrap_or(raw)
        .to_owned();
    let meta = v.get("metadata");
    let duration_ms = meta
        .and_then(|m| m.get("duration_seconds"))
        .and_then(Value::as_f64)
        .and_then(seconds_to_ms);
    let exit_code = meta.and_then(|m| m.get("exit_code"));
    let failed_exit = exit_code.is_some_and(|c| c.as_i64() != Some(0));
    let failed = v.get("success").and_then(Value::as_bool) == Some(false);
    let mut out = CodexOutput {
        text,
        duration_ms,
        is_error: failed_exit || failed,
    };
    if out.duration_ms.is_none() {
        // Some outputs wrap the plain-text form inside the JSON.
        let inner = codex_plain_output(&out.text);
        out.duration_ms = inner.duration_ms;
        out.is_error |= exit_code.is_none() && inner.is_error;
    }
    out
}

/// Plain-text output: headers `Exit code: N` and `Wall time: X seconds`
/// before the output proper.
fn codex_plain_output(s: &str) -> CodexOutput {
    let mut out = CodexOutput {
        text: s.to_owned(),
        ..CodexOutput::default()
    };
    for l in s.lines().take(8) {
        if let Some(rest) = l.strip_prefix("Wall time:") {
            out.duration_ms = leading_number(rest).and_then(seconds_to_ms);
        } else if let Some(rest) = l.strip_prefix("Exit code:") {
            out.is_error = rest.trim().parse::<i64>().is_ok_and(|c| c != 0);
        }
    }
    out
}

/// The decimal number at the start of `s` (after spaces), e.g. `" 0.1 seconds"`.
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The tool name and argument preview of a Codex call, for summaries.
pub(super) fn codex_call_summary(payload: &Value) -> String {
    let name = str_field(payload, "name").unwrap_or("local_shell");
    let args = str_field(payload, "arguments")
        .or_else(|| str_field(payload, "input"))
        .map(str::to_owned)
        .or_else(|| {
            payload
                .get("action")
                .and_then(|a| a.get("command"))
                .map(|c| c.to_string())
        })
        .unwrap_or_default();
    format!("{name} {args}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_paths() {
        let p = "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-x\n+y\n*** Add File: b.rs\n";
        assert_eq!(first_patch_path(p).as_deref(), Some("src/a.rs"));
        assert_eq!(
            first_patch_path("*** Begin Patch\n*** Add File: new.txt\n+hi\n").as_deref(),
            Some("new.txt")
        );
        assert_eq!(first_patch_path("no patch here"), None);
    }

    #[test]
    fn codex_outputs() {
        let json_out =
            json!("{\"output\":\"hi\\n\",\"metadata\":{\"exit_code\":0,\"duration_seconds\":1.2}}");
        let o = codex_output(Some(&json_out));
        assert_eq!(o.text, "hi\n");
        assert_eq!(o.duration_ms, Some(1200));
        assert!(!o.is_error);

        let failed =
            json!("{\"output\":\"boom\",\"metadata\":{\"exit_code\":2,\"duration_seconds\":0.0}}");
        let o = codex_output(Some(&failed));
        assert!(o.is_error);
        assert_eq!(o.duration_ms, Some(0));

        let plain = json!("Exit code: 1\nWall time: 4.05 seconds\nOutput:\nnope");
        let o = codex_output(Some(&plain));
        assert_eq!(o.duration_ms, Some(4050));
        assert!(o.is_error);
        assert_eq!(o.text.len(), plain.as_str().unwrap().len());

        let o = codex_output(Some(&json!("Plan updated")));
        assert_eq!(o.text, "Plan updated");
        assert_eq!(o.duration_ms, None);
        assert!(!o.is_error);

        let o = codex_output(Some(&json!({"content": "x", "success": false})));
        assert_eq!(o.text, "x");
        assert!(o.is_error);

        let o = codex_output(Some(&json!([{"type": "input_text", "text": "ab"}])));
        assert_eq!(o.text, "ab");
        assert_eq!(codex_output(None), CodexOutput::default());
    }

    #[test]
    fn claude_write_family_sizes() {
        assert_eq!(
            claude_written_bytes("Write", &json!({"content": "héllo"})),
            Some(6)
        );
        assert_eq!(
            claude_written_bytes("Edit", &json!({"new_string": "ab"})),
            Some(2)
        );
        assert_eq!(
            claude_written_bytes(
                "MultiEdit",
                &json!({"edits": [{"new_string": "ab"}, {"new_string": "cde"}, {}]})
            ),
            Some(5)
        );
        assert_eq!(
            claude_written_bytes("MultiEdit", &json!({"edits": []})),
            None
        );
        assert_eq!(
            claude_written_bytes("NotebookEdit", &json!({"new_source": "x"})),
            Some(1)
        );
        assert_eq!(
            claude_written_bytes("Read", &json!({"file_path": "/a"})),
            None
        );
        assert_eq!(
            claude_file_path("Task", &json!({"subagent_type": "general-purpose"})).as_deref(),
            Some("general-purpose")
        );
        assert_eq!(
            claude_file_path("Read", &json!({"path": "", "notebook_path": "/n.ipynb"})).as_deref(),
            Some("/n.ipynb")
        );
        assert_eq!(claude_file_path("Bash", &json!({"command": "ls"})), None);
    }
}
