//! Unit tests of the transcript parsers on hand-written lines shaped like
//! the real ones (see `tests/transcripts_golden.rs` for the real files).

use super::*;
use serde_json::json;

fn feed(p: &mut FileParser, seq: u64, line: &str) -> Vec<Record> {
    let mut out = Vec::new();
    p.feed_line(seq, line.as_bytes(), &mut out)
        .unwrap_or_else(|e| panic!("{e} on {line}"));
    out
}

fn usages(records: &[Record]) -> Vec<&UsageRec> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Usage(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn message(records: &[Record]) -> &MessageRec {
    records
        .iter()
        .find_map(|r| match r {
            Record::Message(m) => Some(m),
            _ => None,
        })
        .expect("a message record")
}

/// A Claude assistant line with one content block and the given usage.
fn claude_assistant(
    id: &str,
    req: Option<&str>,
    block: serde_json::Value,
    usage: serde_json::Value,
) -> String {
    let mut line = json!({
        "parentUuid": "p-1", "isSidechain": false, "userType": "external",
        "cwd": "/work/demo", "sessionId": "sess-1", "version": "2.0.55",
        "type": "assistant", "uuid": format!("u-{id}"),
        "timestamp": "2025-11-30T10:00:00.000Z",
        "message": {"id": id, "type": "message", "role": "assistant",
                    "model": "claude-opus-4-5-20251101", "content": [block],
                    "stop_reason": null, "usage": usage}
    });
    if let Some(req) = req {
        line["requestId"] = json!(req);
    }
    line.to_string()
}

fn usage(output: i64) -> serde_json::Value {
    json!({"input_tokens": 10, "cache_creation_input_tokens": 300,
           "cache_read_input_tokens": 5000, "output_tokens": output,
           "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
           "service_tier": "standard"})
}

fn text_block(t: &str) -> serde_json::Value {
    json!({"type": "text", "text": t})
}

#[test]
fn provider_and_tokens_basics() {
    assert_eq!(Provider::Claude.as_str(), "claude");
    assert_eq!(Provider::Codex.as_str(), "codex");
    assert_eq!(FileParser::new(Provider::Codex).provider(), Provider::Codex);
    let t = Tokens {
        input: 1,
        output: 2,
        cache_read: 4,
        cache_write_5m: 8,
        cache_write_1h: 16,
        reasoning: 1,
    };
    assert_eq!(t.total(), 31);
    assert_eq!(t.cache_create(), 24);
    assert!(Tokens::default().is_zero());
}

#[test]
fn malformed_lines_are_errors_never_panics() {
    for provider in [Provider::Claude, Provider::Codex] {
        let mut p = FileParser::new(provider);
        let mut out = Vec::new();
        let full = claude_assistant("msg_1", Some("req_1"), text_block("hi"), usage(5));
        let cut = &full.as_bytes()[..full.len() / 2];
        assert!(matches!(
            p.feed_line(0, cut, &mut out),
            Err(LineError::NotJson(_))
        ));
        assert!(matches!(
            p.feed_line(0, b"{\"a\":", &mut out),
            Err(LineError::NotJson(_))
        ));
        assert!(matches!(
            p.feed_line(0, b"\xff\xfe{}", &mut out),
            Err(LineError::NotJson(_))
        ));
        assert_eq!(
            p.feed_line(0, b"[1,2]", &mut out),
            Err(LineError::NotAnObject)
        );
        assert_eq!(p.feed_line(0, b"42", &mut out), Err(LineError::NotAnObject));
        assert_eq!(
            p.feed_line(0, b"null", &mut out),
            Err(LineError::NotAnObject)
        );
        assert_eq!(p.feed_line(0, b"", &mut out), Ok(()));
        assert_eq!(p.feed_line(0, b"  \t\r", &mut out), Ok(()));
        assert!(out.is_empty());
        // Every prefix of a real-shaped line is either an error or nothing.
        for end in 0..full.len() {
            let _ = p.feed_line(0, &full.as_bytes()[..end], &mut out);
        }
        assert!(LineError::NotAnObject.to_string().contains("not an object"));
    }
}

#[test]
fn unknown_types_and_odd_fields_are_ignored() {
    let mut p = FileParser::new(Provider::Claude);
    for line in [
        r#"{"type":"summary","summary":"x","leafUuid":"l"}"#,
        r#"{"type":"file-history-snapshot","messageId":"m","snapshot":{}}"#,
        r#"{"type":"queue-operation","operation":"enqueue","timestamp":"2025-01-01T00:00:00.000Z"}"#,
        r#"{"type":"brand-new-type","timestamp":"2025-01-01T00:00:00.000Z"}"#,
        r#"{"no_type":true}"#,
    ] {
        assert!(feed(&mut p, 1, line).is_empty(), "{line}");
    }
    // Wrong field types: a message but nothing else, no panic.
    let odd = r#"{"type":"assistant","timestamp":"2025-01-01T00:00:00.000Z","message":{"content":{"x":1},"usage":7,"model":3},"isSidechain":"yes"}"#;
    let recs = feed(&mut p, 2, odd);
    assert_eq!(recs.len(), 1);
    assert_eq!(message(&recs).tokens, Tokens::default());
    let odd2 = r#"{"type":"user","timestamp":"2025-01-01T00:00:00.000Z","message":{"content":[1,null,{"type":"tool_result"},{"type":"tool_use","id":"x"}]}}"#;
    assert_eq!(feed(&mut p, 3, odd2).len(), 1);

    let mut c = FileParser::new(Provider::Codex);
    for line in [
        r#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"compacted","payload":{}}"#,
        r#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"response_item"}"#,
        r#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"event_msg","payload":"x"}"#,
        r#"{"record_type":"state"}"#,
    ] {
        assert!(feed(&mut c, 1, line).is_empty(), "{line}");
    }
    let odd = r#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":"lots"}}}"#;
    let recs = feed(&mut c, 2, odd);
    assert_eq!(recs.len(), 1, "a message, no usage");
}

#[test]
fn claude_usage_dedup_keeps_the_largest_and_reemits_on_growth() {
    let mut p = FileParser::new(Provider::Claude);
    let first = feed(
        &mut p,
        0,
        &claude_assistant("msg_1", Some("req_1"), text_block("a"), usage(1)),
    );
    let u = usages(&first);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].key, "msg_1:req_1");
    assert_eq!(u[0].tokens.output, 1);
    assert_eq!(u[0].tokens.cache_write_5m, 100);
    assert_eq!(u[0].tokens.cache_write_1h, 200);
    assert_eq!(u[0].model, "claude-opus-4-5-20251101");
    assert_eq!(u[0].session_id.as_deref(), Some("sess-1"));

    // Equal duplicate: nothing.
    let same = feed(
        &mut p,
        100,
        &claude_assistant("msg_1", Some("req_1"), text_block("b"), usage(1)),
    );
    assert!(usages(&same).is_empty());
    assert_eq!(
        message(&same).tokens.output,
        1,
        "the message still carries its copy"
    );

    // Larger: re-emitted under the same key, from the new line.
    let grown = feed(
        &mut p,
        200,
        &claude_assistant("msg_1", Some("req_1"), text_block("c"), usage(391)),
    );
    let u = usages(&grown);
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].key.as_str(), u[0].seq, u[0].tokens.output),
        ("msg_1:req_1", 200, 391)
    );

    // Smaller after that: nothing.
    let smaller = feed(
        &mut p,
        300,
        &claude_assistant("msg_1", Some("req_1"), text_block("d"), usage(50)),
    );
    assert!(usages(&smaller).is_empty());

    // Another response: its own key.
    let other = feed(
        &mut p,
        400,
        &claude_assistant("msg_2", Some("req_2"), text_block("e"), usage(3)),
    );
    assert_eq!(usages(&other)[0].key, "msg_2:req_2");
}

#[test]
fn claude_usage_without_ids_is_never_merged() {
    let mut p = FileParser::new(Provider::Claude);
    let a = feed(
        &mut p,
        10,
        &claude_assistant("msg_1", None, text_block("a"), usage(5)),
    );
    let b = feed(
        &mut p,
        20,
        &claude_assistant("msg_1", None, text_block("a"), usage(5)),
    );
    assert_eq!(usages(&a)[0].key, "line:10");
    assert_eq!(usages(&b)[0].key, "line:20");
}

#[test]
fn claude_unbillable_usage_is_a_message_only() {
    let mut p = FileParser::new(Provider::Claude);
    let mut synthetic: serde_json::Value = serde_json::from_str(&claude_assistant(
        "msg_s",
        Some("r"),
        text_block("No response requested."),
        usage(5),
    ))
    .unwrap();
    synthetic["message"]["model"] = json!("<synthetic>");
    let recs = feed(&mut p, 0, &synthetic.to_string());
    assert!(usages(&recs).is_empty());
    assert_eq!(message(&recs).model.as_deref(), Some("<synthetic>"));

    let mut api_error: serde_json::Value = serde_json::from_str(&claude_assistant(
        "msg_e",
        Some("r"),
        text_block("API Error: 529"),
        usage(5),
    ))
    .unwrap();
    api_error["isApiErrorMessage"] = json!(true);
    let recs = feed(&mut p, 1, &api_error.to_string());
    assert!(usages(&recs).is_empty());
    assert_eq!(recs.len(), 1);

    let zero = json!({"input_tokens": 0, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let recs = feed(
        &mut p,
        2,
        &claude_assistant("msg_z", Some("r"), text_block("x"), zero),
    );
    assert!(usages(&recs).is_empty());
}

#[test]
fn claude_cache_split_and_speed() {
    let mut p = FileParser::new(Provider::Claude);
    // Old versions: no cache_creation object, all writes are 5m.
    let old = json!({"input_tokens": 4, "cache_creation_input_tokens": 900,
                     "cache_read_input_tokens": 0, "output_tokens": 7});
    let recs = feed(
        &mut p,
        0,
        &claude_assistant("m1", Some("r1"), text_block("x"), old),
    );
    let t = usages(&recs)[0].tokens;
    assert_eq!(
        (t.cache_write_5m, t.cache_write_1h, t.input, t.output),
        (900, 0, 4, 7)
    );
    assert_eq!(usages(&recs)[0].speed, "standard");

    let fast = json!({"input_tokens": 1, "cache_creation_input_tokens": 50,
                      "cache_read_input_tokens": 2, "output_tokens": 3, "speed": "fast",
                      "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 50}});
    let recs = feed(
        &mut p,
        1,
        &claude_assistant("m2", Some("r2"), text_block("x"), fast),
    );
    let u = usages(&recs)[0];
    assert_eq!((u.tokens.cache_write_5m, u.tokens.cache_write_1h), (0, 50));
    assert_eq!(u.speed, "fast");
    assert_eq!(message(&recs).speed, "fast");
}

#[test]
fn claude_message_fields_and_tools() {
    let mut p = FileParser::new(Provider::Claude);
    let tool = json!({"type": "tool_use", "id": "toolu_1", "name": "Edit",
                      "input": {"file_path": "/w/a.rs", "old_string": "x", "new_string": "héllo"}});
    let recs = feed(
        &mut p,
        42,
        &claude_assistant("m1", Some("r1"), tool, usage(9)),
    );
    assert_eq!(recs.len(), 3, "message, usage, tool use");
    let m = message(&recs);
    assert_eq!(m.seq, 42);
    assert_eq!(m.ts.as_deref(), Some("2025-11-30T10:00:00.000Z"));
    assert_eq!(m.role, "assistant");
    assert_eq!(m.uuid.as_deref(), Some("u-m1"));
    assert_eq!(m.parent_uuid.as_deref(), Some("p-1"));
    assert_eq!(m.cwd.as_deref(), Some("/work/demo"));
    assert!(!m.is_sidechain);
    assert_eq!(m.tools_json, r#"["Edit"]"#);
    assert_eq!(m.content_text, "[Edit] /w/a.rs");
    let Record::ToolUse(u) = &recs[2] else {
        panic!("{recs:?}")
    };
    assert_eq!(u.id, "toolu_1");
    assert_eq!(u.tool_name, "Edit");
    assert_eq!(u.file_path.as_deref(), Some("/w/a.rs"));
    assert_eq!(u.byte_count, Some(6));
    assert_eq!(u.call_index, 0);
    assert_eq!(u.session_id.as_deref(), Some("sess-1"));

    // Several calls on one line: call_index per tool name.
    let line = json!({"type": "assistant", "timestamp": "2025-11-30T10:00:01.000Z",
        "message": {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "Read", "input": {"file_path": "/x"}},
            {"type": "tool_use", "id": "b", "name": "Task", "input": {"subagent_type": "general-purpose"}},
            {"type": "tool_use", "id": "c", "name": "Read", "input": {"file_path": "/y"}}]}});
    let recs = feed(&mut p, 50, &line.to_string());
    let calls: Vec<(&str, i64, Option<&str>, Option<i64>)> = recs
        .iter()
        .filter_map(|r| match r {
            Record::ToolUse(u) => Some((
                u.id.as_str(),
                u.call_index,
                u.file_path.as_deref(),
                u.byte_count,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("a", 0, Some("/x"), None),
            ("b", 0, Some("general-purpose"), None),
            ("c", 1, Some("/y"), None)
        ]
    );
    assert_eq!(message(&recs).tools_json, r#"["Read","Task","Read"]"#);

    // The result line.
    let result = json!({"type": "user", "timestamp": "2025-11-30T10:00:02.500Z", "isSidechain": true,
        "sessionId": "sess-1", "uuid": "u-r",
        "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
             "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "€"}]}]},
        "toolUseResult": {"durationMs": 8, "filenames": []}});
    let recs = feed(&mut p, 60, &result.to_string());
    assert_eq!(recs.len(), 2);
    let m = message(&recs);
    assert_eq!(m.role, "user");
    assert!(m.is_sidechain);
    assert_eq!(m.content_text, "ab€");
    assert_eq!(m.tools_json, "[]");
    let Record::ToolResult(r) = &recs[1] else {
        panic!("{recs:?}")
    };
    assert_eq!(
        (
            r.seq,
            r.tool_use_id.as_str(),
            r.result_bytes,
            r.duration_ms,
            r.is_error
        ),
        (60, "toolu_1", 5, Some(8), true)
    );
    assert_eq!(r.ts, "2025-11-30T10:00:02.500Z");
}

#[test]
fn claude_system_lines_and_long_text() {
    let mut p = FileParser::new(Provider::Claude);
    let sys = json!({"type": "system", "timestamp": "2025-11-30T10:00:00.000Z",
                     "content": "Running PostToolUse:Edit...", "level": "info"});
    let recs = feed(&mut p, 0, &sys.to_string());
    assert_eq!(message(&recs).role, "system");
    assert_eq!(message(&recs).content_text, "Running PostToolUse:Edit...");

    let long = "é".repeat(5000);
    let recs = feed(
        &mut p,
        1,
        &claude_assistant("m", Some("r"), text_block(&long), usage(1)),
    );
    let text = &message(&recs).content_text;
    assert!(text.len() <= CONTENT_TEXT_MAX_BYTES && text.len() >= CONTENT_TEXT_MAX_BYTES - 1);
    assert!(text.chars().all(|c| c == 'é'));

    // A line without a timestamp is not a message, but its usage still counts.
    let mut no_ts: serde_json::Value = serde_json::from_str(&claude_assistant(
        "m9",
        Some("r9"),
        text_block("x"),
        usage(1),
    ))
    .unwrap();
    no_ts.as_object_mut().unwrap().remove("timestamp");
    let recs = feed(&mut p, 2, &no_ts.to_string());
    assert_eq!(recs.len(), 1);
    assert_eq!(usages(&recs)[0].ts, "");
}

const META: &str = r#"{"timestamp":"2025-12-10T10:00:00.000Z","type":"session_meta","payload":{"id":"019b-sess","cwd":"/w/proj","cli_version":"0.66.0"}}"#;
const TURN: &str = r#"{"timestamp":"2025-12-10T10:00:01.000Z","type":"turn_context","payload":{"cwd":"/w/proj","model":"gpt-5.1-codex-max","effort":"high"}}"#;

fn token_count(total: (i64, i64, i64, i64), last: (i64, i64, i64, i64)) -> String {
    let u = |(i, c, o, r): (i64, i64, i64, i64)| {
        json!({"input_tokens": i, "cached_input_tokens": c, "output_tokens": o,
               "reasoning_output_tokens": r, "total_tokens": i + o})
    };
    json!({"timestamp": "2025-12-10T10:00:05.000Z", "type": "event_msg",
           "payload": {"type": "token_count",
                       "info": {"total_token_usage": u(total), "last_token_usage": u(last),
                                "model_context_window": 258400},
                       "rate_limits": {}}})
    .to_string()
}

#[test]
fn codex_usage_from_total_deltas_counts_doubled_events_once() {
    let mut p = FileParser::new(Provider::Codex);
    assert!(feed(&mut p, 0, META).is_empty());
    assert!(feed(&mut p, 100, TURN).is_empty());
    let null_info = r#"{"timestamp":"2025-12-10T10:00:02.000Z","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{}}}"#;
    let recs = feed(&mut p, 200, null_info);
    assert_eq!(recs.len(), 1);
    assert!(usages(&recs).is_empty());

    let first = feed(
        &mut p,
        300,
        &token_count((1000, 800, 50, 20), (1000, 800, 50, 20)),
    );
    let u = usages(&first);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].key, "codex:300");
    assert_eq!(u[0].model, "gpt-5.1-codex-max");
    assert_eq!(u[0].session_id.as_deref(), Some("019b-sess"));
    assert_eq!(
        u[0].tokens,
        Tokens {
            input: 200,
            output: 50,
            cache_read: 800,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: 20
        }
    );
    assert_eq!(u[0].tokens.total(), 1050);
    assert_eq!(message(&first).tokens, u[0].tokens);
    assert_eq!(message(&first).cwd.as_deref(), Some("/w/proj"));

    // The repeated event: same totals, no usage, a zero message.
    let again = feed(
        &mut p,
        400,
        &token_count((1000, 800, 50, 20), (1000, 800, 50, 20)),
    );
    assert!(usages(&again).is_empty());
    assert_eq!(message(&again).tokens, Tokens::default());

    // Next call: the delta.
    let next = feed(
        &mut p,
        500,
        &token_count((2500, 1800, 80, 20), (1500, 1000, 30, 0)),
    );
    let t = usages(&next)[0].tokens;
    assert_eq!(
        (t.input, t.cache_read, t.output, t.reasoning),
        (500, 1000, 30, 0)
    );

    // Totals that go backwards: a new series, use last_token_usage.
    let reset = feed(&mut p, 600, &token_count((300, 0, 10, 0), (300, 0, 10, 0)));
    assert_eq!(usages(&reset)[0].tokens.total(), 310);

    // No total at all: last_token_usage as is.
    let only_last = json!({"timestamp": "2025-12-10T10:00:09.000Z", "type": "event_msg",
        "payload": {"type": "token_count", "info": {"last_token_usage":
            {"input_tokens": 40, "cached_input_tokens": 0, "output_tokens": 2, "reasoning_output_tokens": 0}}}});
    assert_eq!(
        usages(&feed(&mut p, 700, &only_last.to_string()))[0]
            .tokens
            .total(),
        42
    );
}

#[test]
fn codex_messages_and_tools() {
    let mut p = FileParser::new(Provider::Codex);
    feed(&mut p, 0, META);
    feed(&mut p, 1, TURN);
    let user = r#"{"timestamp":"2025-12-10T10:00:02.000Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"fix the bug"}]}}"#;
    let m = feed(&mut p, 2, user);
    assert_eq!(m.len(), 1);
    assert_eq!(message(&m).role, "user");
    assert_eq!(message(&m).content_text, "fix the bug");
    assert_eq!(message(&m).model.as_deref(), Some("gpt-5.1-codex-max"));
    assert_eq!(message(&m).session_id.as_deref(), Some("019b-sess"));

    let call = r#"{"timestamp":"2025-12-10T10:00:03.000Z","type":"response_item","payload":{"type":"function_call","name":"shell_command","arguments":"{\"command\":\"ls\",\"workdir\":\"/w\"}","call_id":"call_A"}}"#;
    let recs = feed(&mut p, 3, call);
    assert_eq!(recs.len(), 2);
    assert_eq!(message(&recs).role, "assistant");
    assert_eq!(message(&recs).tools_json, r#"["shell_command"]"#);
    let Record::ToolUse(u) = &recs[1] else {
        panic!()
    };
    assert_eq!(
        (
            u.id.as_str(),
            u.tool_name.as_str(),
            u.file_path.as_deref(),
            u.byte_count
        ),
        ("call_A", "shell_command", None, None)
    );
    assert_eq!(u.session_id.as_deref(), Some("019b-sess"));

    let out = r#"{"timestamp":"2025-12-10T10:00:03.126Z","type":"response_item","payload":{"type":"function_call_output","call_id":"call_A","output":"Exit code: 0\nWall time: 0.1 seconds\nOutput:\na\nb\n"}}"#;
    let recs = feed(&mut p, 4, out);
    assert_eq!(message(&recs).role, "tool");
    let Record::ToolResult(r) = &recs[1] else {
        panic!()
    };
    assert_eq!(
        (r.tool_use_id.as_str(), r.duration_ms, r.is_error),
        ("call_A", Some(100), false)
    );

    let patch = "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n-a\n+b\n*** End Patch\n";
    let custom = json!({"timestamp": "2025-12-10T10:00:04.000Z", "type": "response_item",
        "payload": {"type": "custom_tool_call", "status": "completed", "call_id": "call_P",
                    "name": "apply_patch", "input": patch}});
    let recs = feed(&mut p, 5, &custom.to_string());
    let Record::ToolUse(u) = &recs[1] else {
        panic!()
    };
    assert_eq!(u.file_path.as_deref(), Some("src/lib.rs"));
    assert_eq!(u.byte_count, Some(patch.len() as i64));

    let custom_out = json!({"timestamp": "2025-12-10T10:00:05.057Z", "type": "response_item",
        "payload": {"type": "custom_tool_call_output", "call_id": "call_P",
                    "output": "{\"output\":\"Success. Updated the following files:\\nM src/lib.rs\\n\",\"metadata\":{\"exit_code\":0,\"duration_seconds\":0.0}}"}});
    let recs = feed(&mut p, 6, &custom_out.to_string());
    let Record::ToolResult(r) = &recs[1] else {
        panic!()
    };
    assert_eq!((r.duration_ms, r.is_error), (Some(0), false));
    assert_eq!(
        r.result_bytes,
        "Success. Updated the following files:\nM src/lib.rs\n".len() as i64
    );

    // event_msg lines are messages too.
    let agent = r#"{"timestamp":"2025-12-10T10:00:06.000Z","type":"event_msg","payload":{"type":"agent_message","message":"Done."}}"#;
    let recs = feed(&mut p, 7, agent);
    assert_eq!(
        (
            message(&recs).role.as_str(),
            message(&recs).content_text.as_str()
        ),
        ("assistant", "Done.")
    );
}

#[test]
fn tool_events_on_both_formats() {
    let claude_use = json!({"type": "assistant", "timestamp": "2025-06-08T11:00:11.669Z",
        "message": {"content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "ls"}}]}});
    let ts = crate::time::parse_ts_ms("2025-06-08T11:00:11.669Z").unwrap();
    assert_eq!(
        tool_events(&claude_use),
        [ToolMark::Use {
            id: "toolu_9".into(),
            name: "Bash".into(),
            ts_ms: ts
        }]
    );
    let claude_result = json!({"type": "user", "timestamp": "2025-06-08T11:00:12.000Z",
        "message": {"content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]},
        "toolUseResult": {"totalDurationMs": 40953}});
    assert_eq!(
        tool_events(&claude_result),
        [ToolMark::Result {
            id: "toolu_9".into(),
            ts_ms: ts + 331,
            duration_ms: Some(40953)
        }]
    );
    let codex_call = json!({"timestamp": "2025-11-17T21:32:50.530Z", "type": "response_item",
        "payload": {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "call_G"}});
    let cts = crate::time::parse_ts_ms("2025-11-17T21:32:50.530Z").unwrap();
    assert_eq!(
        tool_events(&codex_call),
        [ToolMark::Use {
            id: "call_G".into(),
            name: "shell".into(),
            ts_ms: cts
        }]
    );
    let codex_out = json!({"timestamp": "2025-11-17T21:32:50.530Z", "type": "response_item",
        "payload": {"type": "function_call_output", "call_id": "call_G",
                    "output": "{\"output\":\"x\",\"metadata\":{\"exit_code\":0,\"duration_seconds\":0.3}}"}});
    assert_eq!(
        tool_events(&codex_out),
        [ToolMark::Result {
            id: "call_G".into(),
            ts_ms: cts,
            duration_ms: Some(300)
        }]
    );
    // Nothing without a usable timestamp, or on other lines.
    let mut no_ts = claude_use.clone();
    no_ts["timestamp"] = json!("yesterday");
    assert!(tool_events(&no_ts).is_empty());
    assert!(
        tool_events(&json!({"timestamp": "2025-06-08T11:00:11.669Z", "type": "event_msg"}))
            .is_empty()
    );
    assert!(tool_events(&json!(5)).is_empty());
}

#[test]
fn pair_latency_rules() {
    // A real wall-time delta wins.
    assert_eq!(pair_latency_ms(1_000, 1_126, Some(100)), 126);
    // Same flush (<= 10 ms): the reported duration.
    assert_eq!(pair_latency_ms(1_000, 1_000, Some(300)), 300);
    assert_eq!(pair_latency_ms(1_000, 1_010, Some(0)), 0);
    // No duration: the delta, possibly 0.
    assert_eq!(pair_latency_ms(1_000, 1_004, None), 4);
    assert_eq!(pair_latency_ms(1_000, 1_000, None), 0);
    // Never negative.
    assert_eq!(pair_latency_ms(2_000, 1_000, None), 0);
    assert_eq!(pair_latency_ms(2_000, 1_000, Some(-5)), 0);
    assert_eq!(pair_latency_ms(i64::MIN, i64::MAX, None), i64::MAX);
}
