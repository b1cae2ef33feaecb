//! Golden figures over every shipped real transcript.
//!
//! For each `*.jsonl` under `tests/data/transcripts/`, a deliberately plain
//! reference written here (direct `serde_json` walking, prices typed in from
//! research §6) computes: usage events after de-duplication, tokens by kind,
//! cost, tool calls, paired tool results and the sum of their latencies.
//! Then the code under test (`FileParser` fed line by line with byte offsets,
//! re-emitted usage applied as replacement by key, `PriceTable::builtin()`
//! for cost, `pair_latency_ms` for latency) must give the same figures.
//!
//! Run with `--nocapture` to see the per-file table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stackunderflow_live::pricing::{CostSource, PriceTable};
use stackunderflow_live::time::parse_ts_ms;
use stackunderflow_live::transcript::{pair_latency_ms, FileParser, Provider, Record, UsageRec};

/// The figures compared between the reference and the code under test.
#[derive(Debug, Default, Clone, PartialEq)]
struct Figures {
    messages: usize,
    usage_events: usize,
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write_5m: i64,
    cache_write_1h: i64,
    cost_usd: f64,
    tool_uses: usize,
    pairs: usize,
    latency_sum_ms: i64,
    min_latency_ms: i64,
}

impl Figures {
    fn same_as(&self, other: &Figures) -> bool {
        let cost_ok = (self.cost_usd - other.cost_usd).abs() <= 1e-9 * self.cost_usd.abs().max(1.0);
        cost_ok
            && Figures {
                cost_usd: 0.0,
                ..self.clone()
            } == Figures {
                cost_usd: 0.0,
                ..other.clone()
            }
    }
}

fn transcripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transcripts")
}

fn jsonl_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            jsonl_files(&p, found);
        } else if p.extension().is_some_and(|e| e == "jsonl") {
            found.push(p);
        }
    }
}

/// `(byte offset, line)` for every non-empty line, without the `\n`.
fn lines(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            if i > start {
                out.push((start as u64, &bytes[start..i]));
            }
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start as u64, &bytes[start..]));
    }
    out
}

// ------------------------------------------------------------ reference --

/// USD per million tokens: input, 5m write, 1h write, cache read, output.
/// Typed in from research §6; Codex has no cache writes.
fn reference_rates(model: &str, prompt_tokens: i64) -> [f64; 5] {
    let m = model;
    let long = prompt_tokens > 200_000;
    if m.starts_with("claude-opus-4-7")
        || m.starts_with("claude-opus-4-6")
        || m.starts_with("claude-opus-4-5")
    {
        [5.0, 6.25, 10.0, 0.5, 25.0]
    } else if m.starts_with("claude-opus-4-1") || m == "claude-opus-4-20250514" {
        [15.0, 18.75, 30.0, 1.5, 75.0]
    } else if m.starts_with("claude-sonnet-4-5") || m == "claude-sonnet-4-20250514" {
        if long {
            [6.0, 7.5, 12.0, 0.6, 22.5]
        } else {
            [3.0, 3.75, 6.0, 0.3, 15.0]
        }
    } else if m.starts_with("claude-haiku-4-5") {
        [1.0, 1.25, 2.0, 0.1, 5.0]
    } else if m == "gpt-5.1-codex" || m == "gpt-5.1-codex-max" {
        [1.25, 0.0, 0.0, 0.125, 10.0]
    } else if m == "gpt-5.5" {
        [5.0, 0.0, 0.0, 0.5, 30.0]
    } else {
        panic!("reference has no price for {m:?}")
    }
}

/// One reference usage event: input, output, cache read, 5m, 1h, model.
#[derive(Clone)]
struct RefEvent {
    t: [i64; 5],
    model: String,
}

impl RefEvent {
    fn total(&self) -> i64 {
        self.t.iter().sum()
    }
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Pairs a result with its call by id (file order) and adds its latency:
/// the timestamp delta when above 10 ms, else the reported duration, else
/// the delta; never below 0.
fn reference_pair(
    uses: &HashMap<String, i64>,
    id: &str,
    ts: Option<i64>,
    duration: Option<i64>,
    f: &mut Figures,
) {
    if let (Some(&used), Some(ts)) = (uses.get(id), ts) {
        let delta = ts - used;
        let lat = if delta > 10 {
            delta
        } else {
            duration.unwrap_or(delta)
        };
        f.pairs += 1;
        f.latency_sum_ms += lat.max(0);
        f.min_latency_ms = f.min_latency_ms.min(delta);
    }
}

fn reference_figures(provider: Provider, bytes: &[u8]) -> (Figures, Vec<i64>) {
    let mut f = Figures {
        min_latency_ms: i64::MAX,
        ..Figures::default()
    };
    let mut events: Vec<RefEvent> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut uses: HashMap<String, i64> = HashMap::new();
    let mut cumulative: Vec<i64> = Vec::new();
    let mut model = String::new();
    let mut prev = [0i64; 4];

    for (offset, line) in lines(bytes) {
        let v: Value = serde_json::from_slice(line).expect("shipped lines are JSON");
        let kind = v["type"].as_str().unwrap_or("");
        let ts = v["timestamp"].as_str().and_then(parse_ts_ms);
        match provider {
            Provider::Claude => {
                if matches!(kind, "user" | "assistant" | "system") && v["timestamp"].is_string() {
                    f.messages += 1;
                }
                let msg = &v["message"];
                let usage = &msg["usage"];
                if kind == "assistant"
                    && usage.is_object()
                    && msg["model"] != "<synthetic>"
                    && v["isApiErrorMessage"] != true
                {
                    let created = num(&usage["cache_creation_input_tokens"]);
                    let (w5, w1h) = match &usage["cache_creation"] {
                        Value::Object(c) => (
                            num(&c["ephemeral_5m_input_tokens"]),
                            num(&c["ephemeral_1h_input_tokens"]),
                        ),
                        _ => (created, 0),
                    };
                    let ev = RefEvent {
                        t: [
                            num(&usage["input_tokens"]),
                            num(&usage["output_tokens"]),
                            num(&usage["cache_read_input_tokens"]),
                            w5,
                            w1h,
                        ],
                        model: msg["model"].as_str().unwrap_or("").to_owned(),
                    };
                    let key = match (msg["id"].as_str(), v["requestId"].as_str()) {
                        (Some(id), Some(req)) => format!("{id}:{req}"),
                        _ => format!("line:{offset}"),
                    };
                    if ev.total() > 0 {
                        match by_key.get(&key) {
                            Some(&i) if events[i].total() >= ev.total() => {}
                            Some(&i) => events[i] = ev,
                            None => {
                                by_key.insert(key, events.len());
                                events.push(ev);
                            }
                        }
                    }
                }
                let blocks = msg["content"].as_array().cloned().unwrap_or_default();
                let results = blocks.iter().filter(|b| b["type"] == "tool_result").count();
                let tur = &v["toolUseResult"];
                let duration = if results == 1 {
                    tur["durationMs"]
                        .as_i64()
                        .or(tur["totalDurationMs"].as_i64())
                } else {
                    None
                };
                for b in &blocks {
                    if b["type"] == "tool_use" && b["id"].is_string() && b["name"].is_string() {
                        f.tool_uses += 1;
                        if let Some(ts) = ts {
                            uses.insert(b["id"].as_str().unwrap().to_owned(), ts);
                        }
                    } else if b["type"] == "tool_result" {
                        reference_pair(
                            &uses,
                            b["tool_use_id"].as_str().unwrap_or(""),
                            ts,
                            duration,
                            &mut f,
                        );
                    }
                }
            }
            Provider::Codex => {
                let p = &v["payload"];
                let ptype = p["type"].as_str().unwrap_or("");
                match kind {
                    "turn_context" => model = p["model"].as_str().unwrap_or("").to_owned(),
                    "response_item" | "event_msg" => f.messages += 1,
                    _ => {}
                }
                if kind == "event_msg" && ptype == "token_count" && p["info"].is_object() {
                    let tot = &p["info"]["total_token_usage"];
                    let cur = [
                        num(&tot["input_tokens"]),
                        num(&tot["cached_input_tokens"]),
                        num(&tot["output_tokens"]),
                        num(&tot["reasoning_output_tokens"]),
                    ];
                    cumulative.push(num(&tot["total_tokens"]));
                    let d: Vec<i64> = cur.iter().zip(prev).map(|(c, p)| c - p).collect();
                    assert!(d.iter().all(|x| *x >= 0), "totals never go backwards here");
                    prev = cur;
                    if d.iter().any(|x| *x != 0) {
                        events.push(RefEvent {
                            t: [d[0] - d[1], d[2], d[1], 0, 0],
                            model: model.clone(),
                        });
                    }
                }
                if kind == "response_item" {
                    match ptype {
                        "function_call" | "custom_tool_call" | "local_shell_call" => {
                            f.tool_uses += 1;
                            if let Some(ts) = ts {
                                uses.insert(p["call_id"].as_str().unwrap().to_owned(), ts);
                            }
                        }
                        "function_call_output" | "custom_tool_call_output" => {
                            let out = p["output"].as_str().unwrap_or("");
                            let duration = match serde_json::from_str::<Value>(out) {
                                Ok(o) if o.is_object() => o["metadata"]["duration_seconds"]
                                    .as_f64()
                                    .map(|s| (s * 1000.0).round() as i64),
                                _ => out.lines().find_map(|l| {
                                    let rest = l.strip_prefix("Wall time: ")?;
                                    let secs: f64 = rest.split(' ').next()?.parse().ok()?;
                                    Some((secs * 1000.0).round() as i64)
                                }),
                            };
                            reference_pair(
                                &uses,
                                p["call_id"].as_str().unwrap_or(""),
                                ts,
                                duration,
                                &mut f,
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    f.usage_events = events.len();
    for e in &events {
        let [i, o, r, w5, w1h] = e.t;
        f.input += i;
        f.output += o;
        f.cache_read += r;
        f.cache_write_5m += w5;
        f.cache_write_1h += w1h;
        let [pi, p5, p1h, pr, po] = reference_rates(&e.model, i + r + w5 + w1h);
        f.cost_usd +=
            (i as f64 * pi + w5 as f64 * p5 + w1h as f64 * p1h + r as f64 * pr + o as f64 * po)
                / 1e6;
    }
    (f, cumulative)
}

// --------------------------------------------------------- under test ----

struct Parsed {
    figures: Figures,
    usage: HashMap<String, UsageRec>,
    unknown_cost_events: usize,
}

fn parsed_figures(provider: Provider, bytes: &[u8], prices: &PriceTable) -> Parsed {
    let mut f = Figures {
        min_latency_ms: i64::MAX,
        ..Figures::default()
    };
    let mut parser = FileParser::new(provider);
    let mut out = Vec::new();
    let mut usage: HashMap<String, UsageRec> = HashMap::new();
    let mut uses: HashMap<String, i64> = HashMap::new();
    for (offset, line) in lines(bytes) {
        parser
            .feed_line(offset, line, &mut out)
            .unwrap_or_else(|e| panic!("line at {offset}: {e}"));
        for rec in out.drain(..) {
            match rec {
                Record::Message(m) => {
                    assert_eq!(m.seq, offset);
                    assert!(m.content_text.len() <= 2000);
                    assert!(serde_json::from_str::<Vec<String>>(&m.tools_json).is_ok());
                    f.messages += 1;
                }
                Record::Usage(u) => {
                    assert_eq!(u.seq, offset);
                    if let Some(old) = usage.get(&u.key) {
                        assert!(
                            u.tokens.total() > old.tokens.total(),
                            "re-emitted only on growth"
                        );
                    }
                    usage.insert(u.key.clone(), u);
                }
                Record::ToolUse(t) => {
                    f.tool_uses += 1;
                    if let Some(ts) = parse_ts_ms(&t.ts) {
                        uses.insert(t.id, ts);
                    }
                }
                Record::ToolResult(r) => {
                    if let (Some(&used), Some(ts)) = (uses.get(&r.tool_use_id), parse_ts_ms(&r.ts))
                    {
                        let lat = pair_latency_ms(used, ts, r.duration_ms);
                        assert!(lat >= 0, "negative latency");
                        f.pairs += 1;
                        f.latency_sum_ms += lat;
                        f.min_latency_ms = f.min_latency_ms.min(ts - used);
                    }
                }
            }
        }
    }
    f.usage_events = usage.len();
    let mut unknown = 0;
    for u in usage.values() {
        f.input += u.tokens.input;
        f.output += u.tokens.output;
        f.cache_read += u.tokens.cache_read;
        f.cache_write_5m += u.tokens.cache_write_5m;
        f.cache_write_1h += u.tokens.cache_write_1h;
        let (usd, source) = prices.cost(&u.model, &u.speed, &u.tokens);
        if source == CostSource::Unknown {
            unknown += 1;
        }
        f.cost_usd += usd;
    }
    Parsed {
        figures: f,
        usage,
        unknown_cost_events: unknown,
    }
}

#[test]
fn golden_figures_match_the_reference_for_every_shipped_transcript() {
    let root = transcripts_dir();
    let mut files = Vec::new();
    jsonl_files(&root, &mut files);
    assert!(
        files.len() >= 20,
        "expected the shared transcripts, found {}",
        files.len()
    );
    let prices = PriceTable::builtin();

    let mut totals = Figures::default();
    let mut claude_totals = Figures::default();
    let mut claude_files = 0;
    let mut mismatches = Vec::new();
    println!(
        "{:<58} {:>5} {:>6} {:>10} {:>5} {:>5} {:>12}",
        "file", "msgs", "usage", "cost USD", "tools", "pairs", "latency ms"
    );
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let provider = if rel.starts_with("codex/") {
            Provider::Codex
        } else {
            Provider::Claude
        };
        if provider == Provider::Claude {
            claude_files += 1;
        }
        let bytes = std::fs::read(path).unwrap();
        let (want, cumulative) = reference_figures(provider, &bytes);
        let got = parsed_figures(provider, &bytes, &prices);

        assert_eq!(got.unknown_cost_events, 0, "{rel}: every model is priced");
        if got.figures.pairs > 0 {
            assert!(
                got.figures.min_latency_ms >= 0,
                "{rel}: a result before its call"
            );
        }
        if !got.figures.same_as(&want) {
            mismatches.push(format!("{rel}\n  want {want:?}\n  got  {:?}", got.figures));
        }

        // Research §4/§7: Codex cumulative totals, where the file is shipped.
        if provider == Provider::Codex {
            let billed: i64 = got.usage.values().map(|u| u.tokens.total()).sum();
            assert_eq!(
                Some(&billed),
                cumulative.last(),
                "{rel}: billed = final cumulative total"
            );
            if rel.contains("019a93b9") {
                assert_eq!(billed, 1_121_566, "{rel}: the 0.58 rollout");
                assert_eq!(cumulative.len(), 78, "every info count is written twice");
                assert_eq!(got.usage.len(), 39);
            }
        }

        let short: String = if rel.len() > 58 {
            format!("…{}", &rel[rel.len() - 57..])
        } else {
            rel.clone()
        };
        let g = &got.figures;
        println!(
            "{:<58} {:>5} {:>6} {:>10.4} {:>5} {:>5} {:>12}",
            short, g.messages, g.usage_events, g.cost_usd, g.tool_uses, g.pairs, g.latency_sum_ms
        );
        for t in [&mut totals]
            .into_iter()
            .chain((provider == Provider::Claude).then_some(&mut claude_totals))
        {
            t.messages += g.messages;
            t.usage_events += g.usage_events;
            t.input += g.input;
            t.output += g.output;
            t.cache_read += g.cache_read;
            t.cache_write_5m += g.cache_write_5m;
            t.cache_write_1h += g.cache_write_1h;
            t.cost_usd += g.cost_usd;
            t.tool_uses += g.tool_uses;
            t.pairs += g.pairs;
            t.latency_sum_ms += g.latency_sum_ms;
        }
    }
    for (label, n, t) in [
        ("all", files.len(), &totals),
        ("claude", claude_files, &claude_totals),
    ] {
        println!(
            "{label}: {n} files, {} messages, {} usage events, ${:.4}, tokens in {} out {} read {} write5m {} write1h {}, {} tool uses, {} pairs, latency sum {} ms",
            t.messages,
            t.usage_events,
            t.cost_usd,
            t.input,
            t.output,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write_1h,
            t.tool_uses,
            t.pairs,
            t.latency_sum_ms
        );
    }
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
}
