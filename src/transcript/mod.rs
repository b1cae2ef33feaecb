//! Pure parsers for Claude Code and Codex JSONL transcripts.
//!
//! Owns the meaning of one transcript line: which message it carries, which
//! billed usage it reports, and which tool calls and tool results it holds.
//! The tailer reads bytes and cuts lines; this module turns each complete line
//! into [`Record`]s through a per-file [`FileParser`]. [`tool_events`] is the
//! stateless variant the follow mode uses on `messages.raw_json` rows, and
//! [`pair_latency_ms`] is the one place where tool latency is defined.
//!
//! Format facts behind the rules here are in `shared/research-transcripts.md`
//! (measured on real transcripts, which are shipped as test data under
//! `tests/data/transcripts/`).
//!
//! **Architecture Invariant:** nothing here does I/O, reads the clock, spawns
//! threads or panics on bad input, because a transcript is written by another
//! program while we read it and a broken line must cost one log line, not the
//! daemon. Any thread may own a [`FileParser`]; it is not shared.
//!
//! **Architecture Invariant:** the parser keeps only per-file state (the
//! usage de-duplication keys, the Codex model and running token total), so
//! two files never influence each other's records.

mod claude;
mod codex;
mod text;
mod tools;

use std::fmt;

use serde_json::Value;

/// Which coding agent wrote a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Claude Code (`~/.claude/projects/**.jsonl`).
    Claude,
    /// OpenAI Codex CLI rollouts (`~/.codex/sessions/**/rollout-*.jsonl`).
    Codex,
}

impl Provider {
    /// The provider's name as stored in the database: `"claude"` or `"codex"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Claude => "claude",
            Provider::Codex => "codex",
        }
    }
}

/// Token counts of one billed API response.
///
/// Claude maps one to one from `message.usage`. Codex is mapped like ccusage
/// does: `input = input_tokens - cached_input_tokens`,
/// `cache_read = cached_input_tokens`, `output = output_tokens` (which already
/// includes reasoning), `reasoning = reasoning_output_tokens`, and no cache
/// writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Uncached input tokens.
    pub input: i64,
    /// Output tokens, reasoning included.
    pub output: i64,
    /// Input tokens served from the prompt cache.
    pub cache_read: i64,
    /// Input tokens written to the 5-minute prompt cache.
    pub cache_write_5m: i64,
    /// Input tokens written to the 1-hour prompt cache.
    pub cache_write_1h: i64,
    /// The part of `output` spent on reasoning (Codex only; informational).
    pub reasoning: i64,
}

impl Tokens {
    /// Every billed token: input, output, cache reads and both cache writes.
    ///
    /// `reasoning` is not added because it is already part of `output`.
    pub fn total(&self) -> i64 {
        self.input + self.output + self.cache_read + self.cache_write_5m + self.cache_write_1h
    }

    /// All cache-write tokens (5-minute plus 1-hour).
    pub fn cache_create(&self) -> i64 {
        self.cache_write_5m + self.cache_write_1h
    }

    /// True when every count is zero.
    pub fn is_zero(&self) -> bool {
        *self == Tokens::default()
    }
}

/// Everything one JSONL line yields. A line may yield several records; they
/// are pushed in this order: the message, then its usage, then tool calls and
/// results in block order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A message-bearing line: Claude `user`/`assistant`/`system` lines with a
    /// timestamp, and every Codex `response_item` / `event_msg` line.
    Message(MessageRec),
    /// A billed usage event, keyed for de-duplication.
    ///
    /// Emitted the first time a key is seen, and emitted again with the same
    /// key whenever a later line carries a strictly larger usage (by
    /// [`Tokens::total`]); the caller then replaces the stored event. Never
    /// emitted for a smaller or equal duplicate.
    Usage(UsageRec),
    /// One tool call (Claude `tool_use` block; Codex `function_call`,
    /// `custom_tool_call` or `local_shell_call`).
    ToolUse(ToolUseRec),
    /// The result of a tool call, paired to its [`Record::ToolUse`] by
    /// `tool_use_id`.
    ToolResult(ToolResultRec),
}

/// One message-bearing line, as stored in `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRec {
    /// Byte offset of the line in its file (the store's `seq`).
    pub seq: u64,
    /// The line's timestamp text as written, if any.
    pub ts: Option<String>,
    /// `user`, `assistant`, `system`, `tool` (Codex tool outputs) or
    /// `developer` (Codex).
    pub role: String,
    /// Model id: Claude `message.model`; Codex the latest `turn_context` model.
    pub model: Option<String>,
    /// Claude `sessionId`; Codex `session_meta.payload.id`.
    pub session_id: Option<String>,
    /// Working directory the agent ran in, if the line or session says.
    pub cwd: Option<String>,
    /// Claude `isSidechain` (sub-agent line); always false for Codex.
    pub is_sidechain: bool,
    /// Claude `uuid`.
    pub uuid: Option<String>,
    /// Claude `parentUuid`.
    pub parent_uuid: Option<String>,
    /// `"standard"` or `"fast"` (Claude `usage.speed`).
    pub speed: String,
    /// Short plain-text summary of the line, at most
    /// [`CONTENT_TEXT_MAX_BYTES`] bytes, cut on a char boundary.
    pub content_text: String,
    /// JSON array of the tool names called on this line; `"[]"` if none.
    pub tools_json: String,
    /// The usage this line carries, zero if none. Claude: the usage copied on
    /// the line (possibly a partial duplicate, see [`Record::Usage`]). Codex
    /// `token_count` lines: the billed change since the previous count, so
    /// repeated counts carry zero.
    pub tokens: Tokens,
}

/// Upper bound, in UTF-8 bytes, of [`MessageRec::content_text`].
pub const CONTENT_TEXT_MAX_BYTES: usize = 2000;

/// A billed usage event (one API response).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRec {
    /// De-duplication key. Claude: `"<message.id>:<requestId>"`, or
    /// `"line:<seq>"` when either id is missing (never merged). Codex:
    /// `"codex:<seq of the token_count line>"`.
    pub key: String,
    /// Byte offset of the line that carried this usage.
    pub seq: u64,
    /// That line's timestamp text (empty if the line had none).
    pub ts: String,
    /// Model id, `""` if unknown.
    pub model: String,
    /// `"standard"` or `"fast"`.
    pub speed: String,
    /// The billed tokens.
    pub tokens: Tokens,
    /// The session the usage belongs to.
    pub session_id: Option<String>,
    /// True for Claude sub-agent (sidechain) lines.
    pub is_sidechain: bool,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUseRec {
    /// Byte offset of the line holding the call.
    pub seq: u64,
    /// Claude `tool_use.id`; Codex `call_id`.
    pub id: String,
    /// The line's timestamp text (empty if the line had none).
    pub ts: String,
    /// Tool name as the agent wrote it (`Bash`, `Edit`, `shell`, `apply_patch`…).
    pub tool_name: String,
    /// The file the call touches: upstream's `message_tool_mart.file_path`
    /// rule for Claude (the sub-agent type for `Task`/`Agent`), the first file
    /// of the patch for Codex `apply_patch`.
    pub file_path: Option<String>,
    /// UTF-8 size of the written payload for write-family tools (and the
    /// patch for `apply_patch`); `None` where upstream uses the size of the
    /// result, which the caller takes from [`ToolResultRec::result_bytes`].
    pub byte_count: Option<i64>,
    /// 0-based index per tool name within the line.
    pub call_index: i64,
    /// The session the call belongs to.
    pub session_id: Option<String>,
}

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResultRec {
    /// Byte offset of the line holding the result.
    pub seq: u64,
    /// The [`ToolUseRec::id`] this result answers.
    pub tool_use_id: String,
    /// The line's timestamp text (empty if the line had none).
    pub ts: String,
    /// UTF-8 length of the result text (Claude: the string content or the
    /// concatenated text blocks; Codex: the command output, without the
    /// metadata wrapper).
    pub result_bytes: i64,
    /// Run time the agent reported: Codex `metadata.duration_seconds` or a
    /// `Wall time: X seconds` header; Claude `toolUseResult.durationMs` or
    /// `totalDurationMs`.
    pub duration_ms: Option<i64>,
    /// Claude `is_error`; Codex non-zero exit code or `success: false`.
    pub is_error: bool,
}

/// Why a line could not be used. The caller logs it with the file and offset
/// and goes on; it is never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// The line is not valid JSON (often a line cut short); the text is the
    /// parser's message.
    NotJson(String),
    /// The line is valid JSON but not an object.
    NotAnObject,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotJson(msg) => write!(f, "line is not valid JSON: {msg}"),
            LineError::NotAnObject => f.write_str("line is JSON but not an object"),
        }
    }
}

impl std::error::Error for LineError {}

/// Per-file incremental parser.
///
/// Create one per transcript file and feed it the file's complete lines in
/// file order. It remembers what it needs across lines: the Claude usage keys
/// already emitted (with their largest total), and for Codex the session id,
/// working directory, current model and running token total.
#[derive(Debug, Clone)]
pub struct FileParser {
    /// Per-provider state; the variant never changes after `new`.
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Claude(claude::State),
    Codex(codex::State),
}

impl FileParser {
    /// A parser for a file written by `provider`, positioned before its first line.
    pub fn new(provider: Provider) -> Self {
        let inner = match provider {
            Provider::Claude => Inner::Claude(claude::State::default()),
            Provider::Codex => Inner::Codex(codex::State::default()),
        };
        FileParser { inner }
    }

    /// The provider this parser was made for.
    pub fn provider(&self) -> Provider {
        match self.inner {
            Inner::Claude(_) => Provider::Claude,
            Inner::Codex(_) => Provider::Codex,
        }
    }

    /// Parses one line found at byte offset `seq`, appending what it yields to
    /// `out`.
    ///
    /// `line` is a complete line without its trailing `\n` (a trailing `\r`
    /// and a UTF-8 byte-order mark are tolerated). Empty or whitespace-only
    /// lines, unknown line types and unknown fields give `Ok` with nothing
    /// pushed. A line that is not JSON (for example one cut short) gives
    /// [`LineError::NotJson`]; nothing is pushed and the parser's state is
    /// unchanged, so the caller may go on with the next line.
    pub fn feed_line(
        &mut self,
        seq: u64,
        line: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<(), LineError> {
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: Value =
            serde_json::from_slice(line).map_err(|e| LineError::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(LineError::NotAnObject);
        }
        match &mut self.inner {
            Inner::Claude(state) => state.feed(seq, &value, out),
            Inner::Codex(state) => state.feed(seq, &value, out),
        }
        Ok(())
    }
}

pub use crate::latency::{pair_latency_ms, ToolMark, SAME_FLUSH_MS};

/// The tool calls and results one already-parsed line carries.
///
/// Stateless, for the follow mode that pairs latencies from
/// `messages.raw_json` (the original JSONL lines, Claude or Codex; the format
/// is recognised from the line's shape). A line without a parseable
/// `timestamp` yields nothing.
pub fn tool_events(line: &Value) -> Vec<ToolMark> {
    let Some(ts_ms) = line
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(crate::time::parse_ts_ms)
    else {
        return Vec::new();
    };
    tools::line_items(line)
        .into_iter()
        .map(|item| match item {
            tools::Item::Call(c) => ToolMark::Use {
                id: c.id,
                name: c.name,
                ts_ms,
            },
            tools::Item::Output(o) => ToolMark::Result {
                id: o.tool_use_id,
                ts_ms,
                duration_ms: o.duration_ms,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
