//! Model prices and the cost of one usage event.
//!
//! Owns the rate card: a versioned built-in table (`data/prices.json`,
//! embedded at build time, sources documented in its `notes`), an optional
//! LiteLLM `model_prices_and_context_window.json` merged over it, model-id
//! normalisation for look-ups, and the cost formula (5-minute and 1-hour cache
//! writes, the above-200k long-context tier, the fast-mode multiplier).
//!
//! Pure: no I/O (the caller reads any override file and passes its text), no
//! clock. Any thread may share a [`PriceTable`] read-only.
//!
//! **Architecture Invariant:** an unknown model costs `(0.0,
//! CostSource::Unknown)`, never a silent `$0` rate card, because a dashboard
//! that shows $0 for a model we cannot price is lying.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::transcript::Tokens;

/// The built-in price table, in the format [`PriceTable::from_json`] reads.
const BUILTIN_PRICES: &str = include_str!("../data/prices.json");

/// A request whose prompt (input + cache reads + cache writes) is larger
/// than this many tokens is priced at the model's [`LongContext`] rates, if
/// it has them.
pub const LONG_CONTEXT_THRESHOLD: i64 = 200_000;

/// Where a cost figure came from, as stored in `usage_events.cost_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSource {
    /// Computed from a known price.
    RateCard,
    /// The model is not in the table; the cost is not known (reported as 0).
    Unknown,
}

impl CostSource {
    /// `"rate_card"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::RateCard => "rate_card",
            CostSource::Unknown => "unknown",
        }
    }
}

/// Rates for requests above [`LONG_CONTEXT_THRESHOLD`] prompt tokens, USD per
/// million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongContext {
    /// Uncached input.
    pub input: f64,
    /// 5-minute cache write.
    pub cache_write_5m: f64,
    /// 1-hour cache write.
    pub cache_write_1h: f64,
    /// Cache read.
    pub cache_read: f64,
    /// Output.
    pub output: f64,
}

/// The price of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// 5-minute cache write.
    pub cache_write_5m: f64,
    /// 1-hour cache write.
    pub cache_write_1h: f64,
    /// Cache read.
    pub cache_read: f64,
    /// Output (reasoning included).
    pub output: f64,
    /// Rates above [`LONG_CONTEXT_THRESHOLD`] prompt tokens, if known.
    pub long_context: Option<LongContext>,
    /// Factor applied to the whole cost when the usage's speed is `"fast"`
    /// (1.0 when the model has no fast mode or it is not known).
    pub fast_multiplier: f64,
}

impl Price {
    /// A price from the five base rates, with the usual derived defaults
    /// for missing cache rates: 5-minute write 1.25× input, 1-hour write 2×
    /// input, read 0.1× input. No long-context tier, fast multiplier 1.
    pub fn from_rates(
        input: f64,
        output: f64,
        cache_write_5m: Option<f64>,
        cache_write_1h: Option<f64>,
        cache_read: Option<f64>,
    ) -> Price {
        Price {
            input,
            cache_write_5m: cache_write_5m.unwrap_or(input * 1.25),
            cache_write_1h: cache_write_1h.unwrap_or(input * 2.0),
            cache_read: cache_read.unwrap_or(input * 0.1),
            output,
            long_context: None,
            fast_multiplier: 1.0,
        }
    }

    /// Cost in USD of one request with tokens `t` at speed `speed`.
    ///
    /// The long-context rates apply to every token of the request when its
    /// prompt (input + cache reads + cache writes) exceeds
    /// [`LONG_CONTEXT_THRESHOLD`], which is Anthropic's per-request rule.
    pub fn cost(&self, speed: &str, t: &Tokens) -> f64 {
        let prompt = t.input + t.cache_read + t.cache_create();
        let r = match self.long_context {
            Some(lc) if prompt > LONG_CONTEXT_THRESHOLD => lc,
            _ => LongContext {
                input: self.input,
                cache_write_5m: self.cache_write_5m,
                cache_write_1h: self.cache_write_1h,
                cache_read: self.cache_read,
                output: self.output,
            },
        };
        let usd = (t.input as f64 * r.input
            + t.cache_write_5m as f64 * r.cache_write_5m
            + t.cache_write_1h as f64 * r.cache_write_1h
            + t.cache_read as f64 * r.cache_read
            + t.output as f64 * r.output)
            / 1_000_000.0;
        if speed == "fast" {
            usd * self.fast_multiplier
        } else {
            usd
        }
    }
}

/// Why a price file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PriceError {
    /// The text is not JSON; the message is the parser's.
    NotJson(String),
    /// The JSON is not shaped like a price file.
    BadShape(String),
    /// A model entry is present but unusable.
    BadEntry {
        /// The model id of the entry.
        model: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no usable model price.
    NoModels,
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceError::NotJson(msg) => write!(f, "price file is not valid JSON: {msg}"),
            PriceError::BadShape(msg) => write!(f, "price file has the wrong shape: {msg}"),
            PriceError::BadEntry { model, reason } => {
                write!(f, "price of model {model:?} is unusable: {reason}")
            }
            PriceError::NoModels => f.write_str("price file holds no usable model price"),
        }
    }
}

impl std::error::Error for PriceError {}

/// A set of model prices with id normalisation.
///
/// Look-ups try the exact id first, then a normalised form (lower case,
/// provider prefix such as `anthropic/` removed, trailing `-YYYYMMDD`,
/// `@YYYYMMDD` or `-YYYY-MM-DD` date removed, dots read as dashes), so
/// `claude-sonnet-4-5-20250929`, `anthropic/claude-sonnet-4.5` and
/// `claude-sonnet-4-5` find the same price.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Where the figures come from (the built-in file's `version`, or
    /// `"litellm"`, or a merge of both).
    version: String,
    /// Model id → price, with its precedence tier (0 = highest).
    entries: Vec<Entry>,
    /// Exact id → index into `entries`.
    exact: HashMap<String, usize>,
    /// Normalised id → index of the preferred entry with that form.
    normalised: HashMap<String, usize>,
    /// False for tables that cannot express fast-mode multipliers (LiteLLM);
    /// merging such a table over another keeps the other's multipliers.
    knows_fast: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    model: String,
    price: Price,
    /// Precedence in a merged table; lower wins a normalised-id clash.
    tier: u32,
}

impl PriceTable {
    /// The built-in rate card (`data/prices.json`, embedded).
    pub fn builtin() -> PriceTable {
        // The embedded file is checked by the unit tests, so this cannot fail
        // in a tested build.
        PriceTable::from_json(BUILTIN_PRICES).expect("data/prices.json is a valid price table")
    }

    /// Reads a price table in the format of `data/prices.json`: an object
    /// with a `version` string and `models`, mapping each model id to
    /// `{input, output, cache_read?, cache_write_5m?, cache_write_1h?,
    /// long_context?: {same five}, fast_multiplier?}` in USD per million
    /// tokens. Missing cache rates default as in [`Price::from_rates`].
    /// Other keys (`notes`, `unit`, per-model `unverified`) are ignored.
    pub fn from_json(text: &str) -> Result<PriceTable, PriceError> {
        let root = parse_object(text)?;
        let version = root
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(|| PriceError::BadShape("no \"version\" string".into()))?
            .to_owned();
        let models = root
            .get("models")
            .and_then(Value::as_object)
            .ok_or_else(|| PriceError::BadShape("no \"models\" object".into()))?;
        let mut entries = Vec::with_capacity(models.len());
        for (model, v) in models {
            let bad = |reason: &str| PriceError::BadEntry {
                model: model.clone(),
                reason: reason.to_owned(),
            };
            let rate = |v: &Value, key: &str| -> Result<Option<f64>, PriceError> {
                match v.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(x) => match x.as_f64() {
                        Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
                        _ => Err(bad(&format!("{key} is not a non-negative number"))),
                    },
                }
            };
            let (Some(input), Some(output)) = (rate(v, "input")?, rate(v, "output")?) else {
                return Err(bad("input and output are required"));
            };
            let mut price = Price::from_rates(
                input,
                output,
                rate(v, "cache_write_5m")?,
                rate(v, "cache_write_1h")?,
                rate(v, "cache_read")?,
            );
            if let Some(lc) = v.get("long_context").filter(|l| !l.is_null()) {
                let (Some(li), Some(lo)) = (rate(lc, "input")?, rate(lc, "output")?) else {
                    return Err(bad("long_context needs input and output"));
                };
                let p = Price::from_rates(
                    li,
                    lo,
                    rate(lc, "cache_write_5m")?,
                    rate(lc, "cache_write_1h")?,
                    rate(lc, "cache_read")?,
                );
                price.long_context = Some(long_context_of(&p));
            }
            if let Some(m) = rate(v, "fast_multiplier")? {
                price.fast_multiplier = m;
            }
            entries.push(Entry {
                model: model.clone(),
                price,
                tier: 0,
            });
        }
        PriceTable::build(version, entries, true)
    }

    /// Reads LiteLLM's `model_prices_and_context_window.json`.
    ///
    /// Every entry with numeric `input_cost_per_token` and
    /// `output_cost_per_token` (USD per token) becomes a price; others (image,
    /// audio, embedding-only entries, `sample_spec`) are skipped. Cache rates:
    /// `cache_creation_input_token_cost` (5-minute write, else 1.25× input),
    /// `cache_creation_input_token_cost_above_1hr` (1-hour write, else 2×
    /// input), `cache_read_input_token_cost` (else 0.1× input). The
    /// `*_above_200k_tokens` fields, when `input_cost_per_token_above_200k_tokens`
    /// is present, give the long-context tier. LiteLLM has no fast-mode
    /// factor, so these prices carry 1.0 and inherit the factor of the table
    /// they are merged over (see [`PriceTable::merged_over`]).
    pub fn from_litellm_json(text: &str) -> Result<PriceTable, PriceError> {
        let root = parse_object(text)?;
        let mut entries = Vec::new();
        for (model, v) in &root {
            if model == "sample_spec" || !v.is_object() {
                continue;
            }
            let per_m = |key: &str| {
                v.get(key)
                    .and_then(Value::as_f64)
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f * 1_000_000.0)
            };
            let (Some(input), Some(output)) = (
                per_m("input_cost_per_token"),
                per_m("output_cost_per_token"),
            ) else {
                continue;
            };
            let mut price = Price::from_rates(
                input,
                output,
                per_m("cache_creation_input_token_cost"),
                per_m("cache_creation_input_token_cost_above_1hr"),
                per_m("cache_read_input_token_cost"),
            );
            if let Some(li) = per_m("input_cost_per_token_above_200k_tokens") {
                let p = Price::from_rates(
                    li,
                    per_m("output_cost_per_token_above_200k_tokens").unwrap_or(output),
                    per_m("cache_creation_input_token_cost_above_200k_tokens"),
                    per_m("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
                    per_m("cache_read_input_token_cost_above_200k_tokens"),
                );
                price.long_context = Some(long_context_of(&p));
            }
            entries.push(Entry {
                model: model.clone(),
                price,
                tier: 0,
            });
        }
        PriceTable::build("litellm".to_owned(), entries, false)
    }

    /// This table laid over `base`: where both price a model, `self` wins
    /// (also for normalised look-ups). If `self` cannot express fast-mode
    /// factors (a LiteLLM table), each of its prices takes the factor `base`
    /// has for the same model.
    pub fn merged_over(self, base: PriceTable) -> PriceTable {
        let shift = self.entries.iter().map(|e| e.tier).max().unwrap_or(0) + 1;
        let mut entries = self.entries;
        if !self.knows_fast {
            for e in &mut entries {
                if let Some(p) = base.lookup(&e.model) {
                    e.price.fast_multiplier = p.fast_multiplier;
                }
            }
        }
        for e in base.entries {
            if !self.exact.contains_key(&e.model) {
                entries.push(Entry {
                    tier: e.tier + shift,
                    ..e
                });
            }
        }
        let version = format!("{} over {}", self.version, base.version);
        PriceTable::index(version, entries, base.knows_fast)
    }

    /// The price of `model`: its exact id, else its normalised form.
    ///
    /// In a merged table an override's price for the normalised form beats a
    /// base entry with the exact id (overrides win), unless the override only
    /// has a provider-prefixed id such as `bedrock/…`, which may be a
    /// reseller's price.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let exact = self.exact.get(model).copied();
        let norm = self.normalised.get(&normalise(model)).copied();
        let rank = |i: usize, is_exact: bool| {
            let e = &self.entries[i];
            (!is_exact && e.model.contains('/'), e.tier)
        };
        let i = match (exact, norm) {
            (Some(x), Some(n)) if rank(n, false) < rank(x, true) => n,
            (Some(x), _) => x,
            (None, n) => n?,
        };
        Some(&self.entries[i].price)
    }

    /// Cost in USD of one usage event and where the figure comes from. An
    /// unknown model gives `(0.0, CostSource::Unknown)`: the caller must
    /// report it as unknown, not as a real $0.
    pub fn cost(&self, model: &str, speed: &str, t: &Tokens) -> (f64, CostSource) {
        match self.lookup(model) {
            Some(p) => (p.cost(speed, t), CostSource::RateCard),
            None => (0.0, CostSource::Unknown),
        }
    }

    /// The table's version label.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of priced model ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no model is priced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn build(version: String, entries: Vec<Entry>, knows_fast: bool) -> Result<Self, PriceError> {
        if entries.is_empty() {
            return Err(PriceError::NoModels);
        }
        Ok(PriceTable::index(version, entries, knows_fast))
    }

    fn index(version: String, entries: Vec<Entry>, knows_fast: bool) -> PriceTable {
        let mut exact = HashMap::with_capacity(entries.len());
        let mut normalised: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            exact.entry(e.model.clone()).or_insert(i);
            let slot = normalised.entry(normalise(&e.model)).or_insert(i);
            if preference(e) < preference(&entries[*slot]) {
                *slot = i;
            }
        }
        PriceTable {
            version,
            entries,
            exact,
            normalised,
            knows_fast,
        }
    }
}

/// Which of several entries sharing a normalised id a look-up should use:
/// higher-precedence table first, then ids without a provider prefix (the
/// first-party price), then the shortest id, then the alphabetical first.
fn preference(e: &Entry) -> (u32, bool, usize, &str) {
    (e.tier, e.model.contains('/'), e.model.len(), &e.model)
}

fn long_context_of(p: &Price) -> LongContext {
    LongContext {
        input: p.input,
        cache_write_5m: p.cache_write_5m,
        cache_write_1h: p.cache_write_1h,
        cache_read: p.cache_read,
        output: p.output,
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, PriceError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(PriceError::BadShape("top level is not an object".into())),
        Err(e) => Err(PriceError::NotJson(e.to_string())),
    }
}

/// The look-up form of a model id: lower case, no provider prefix, no
/// trailing release date, dots read as dashes.
pub fn normalise(model: &str) -> String {
    let lower = model.trim().to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or("");
    let name = strip_date(name);
    name.replace('.', "-")
}

/// Removes a trailing `-YYYYMMDD`, `@YYYYMMDD` or `-YYYY-MM-DD`.
fn strip_date(s: &str) -> &str {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let n = b.len();
    if n > 9 && matches!(b[n - 9], b'-' | b'@') && digits(n - 8..n) {
        return &s[..n - 9];
    }
    if n > 11
        && b[n - 11] == b'-'
        && b[n - 3] == b'-'
        && b[n - 6] == b'-'
        && digits(n - 10..n - 6)
        && digits(n - 5..n - 3)
        && digits(n - 2..n)
    {
        return &s[..n - 11];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    fn tokens(input: i64, output: i64, read: i64, w5: i64, w1h: i64) -> Tokens {
        Tokens {
            input,
            output,
            cache_read: read,
            cache_write_5m: w5,
            cache_write_1h: w1h,
            reasoning: 0,
        }
    }

    #[test]
    fn builtin_parses_and_has_the_research_prices() {
        let t = PriceTable::builtin();
        assert!(t.version().starts_with("2026-"));
        let opus = t.lookup("claude-opus-4-7").unwrap();
        assert_eq!(
            (
                opus.input,
                opus.cache_write_5m,
                opus.cache_write_1h,
                opus.cache_read,
                opus.output
            ),
            (5.0, 6.25, 10.0, 0.5, 25.0)
        );
        assert_eq!(opus.fast_multiplier, 6.0);
        assert_eq!(t.lookup("claude-opus-4-1-20250805").unwrap().output, 75.0);
        assert_eq!(t.lookup("claude-opus-4-20250514").unwrap().input, 15.0);
        assert_eq!(
            t.lookup("claude-haiku-4-5-20251001")
                .unwrap()
                .cache_write_1h,
            2.0
        );
        let codex = t.lookup("gpt-5.1-codex-max").unwrap();
        assert_eq!(
            (codex.input, codex.cache_read, codex.output),
            (1.25, 0.125, 10.0)
        );
        assert_eq!(t.lookup("gpt-5.5").unwrap().output, 30.0);
        assert_eq!(t.lookup("claude-sonnet-4-6").unwrap().long_context, None);
    }

    #[test]
    fn lookup_normalises_ids() {
        let t = PriceTable::builtin();
        let want = *t.lookup("claude-sonnet-4-5").unwrap();
        for id in [
            "claude-sonnet-4-5-20250929",
            "anthropic/claude-sonnet-4-5",
            "claude-sonnet-4.5",
            "Claude-Sonnet-4.5",
            "vertex_ai/claude-sonnet-4-5@20250929",
        ] {
            assert_eq!(t.lookup(id), Some(&want), "{id}");
        }
        assert_eq!(t.lookup("claude-opus-4.5").unwrap().input, 5.0);
        assert_eq!(t.lookup("openai/gpt-5-1-codex").unwrap().input, 1.25);
        assert_eq!(t.lookup("gpt-5.1-codex-2025-11-13").unwrap().input, 1.25);
        // A trailing date must not eat the model's own numbers.
        assert_eq!(normalise("claude-opus-4-1"), "claude-opus-4-1");
        assert_eq!(normalise("claude-opus-4-20250514"), "claude-opus-4");
    }

    #[test]
    fn unknown_model_is_reported_not_free() {
        let t = PriceTable::builtin();
        let (usd, src) = t.cost("mystery-model-9", "standard", &tokens(10, 10, 0, 0, 0));
        assert_eq!((usd, src), (0.0, CostSource::Unknown));
        assert_eq!(src.as_str(), "unknown");
        assert_eq!(
            t.cost("", "standard", &Tokens::default()).1,
            CostSource::Unknown
        );
        assert_eq!(CostSource::RateCard.as_str(), "rate_card");
    }

    #[test]
    fn cost_formula_with_both_cache_writes() {
        let t = PriceTable::builtin();
        let (usd, src) = t.cost(
            "claude-opus-4-7",
            "standard",
            &tokens(1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000),
        );
        assert_eq!(src, CostSource::RateCard);
        assert!(close(usd, 5.0 + 25.0 + 0.5 + 6.25 + 10.0), "{usd}");
        // 1h writes are 2x input for Sonnet.
        let (usd, _) = t.cost("claude-sonnet-4", "standard", &tokens(0, 0, 0, 0, 100_000));
        assert!(close(usd, 0.6), "{usd}");
    }

    #[test]
    fn fast_mode_multiplies() {
        let t = PriceTable::builtin();
        let tk = tokens(1000, 2000, 0, 0, 0);
        let (std_usd, _) = t.cost("claude-opus-4-7", "standard", &tk);
        let (fast_usd, _) = t.cost("claude-opus-4-7", "fast", &tk);
        assert!(close(fast_usd, std_usd * 6.0));
        let (h_std, _) = t.cost("claude-haiku-4-5", "standard", &tk);
        let (h_fast, _) = t.cost("claude-haiku-4-5", "fast", &tk);
        assert!(close(h_std, h_fast));
    }

    #[test]
    fn long_context_tier_applies_per_request_above_200k() {
        let t = PriceTable::builtin();
        // Exactly 200k prompt: base rates.
        let at = tokens(100_000, 1_000_000, 100_000, 0, 0);
        let (usd, _) = t.cost("claude-sonnet-4-5-20250929", "standard", &at);
        assert!(close(usd, 0.3 + 15.0 + 0.03), "{usd}");
        // One token more: every category at the long-context rate.
        let above = tokens(100_000, 1_000_000, 100_000, 1, 0);
        let (usd, _) = t.cost("claude-sonnet-4-5-20250929", "standard", &above);
        assert!(close(usd, 0.6 + 22.5 + 0.06 + 7.5e-6), "{usd}");
        let lc1h = tokens(0, 0, 0, 0, 1_000_000);
        let (usd, _) = t.cost("claude-sonnet-4", "standard", &lc1h);
        assert!(close(usd, 12.0));
        // Opus 4.7 has no known tier: base rates even above 200k.
        let (usd, _) = t.cost(
            "claude-opus-4-7",
            "standard",
            &tokens(1_000_000, 0, 0, 0, 0),
        );
        assert!(close(usd, 5.0));
    }

    const LITELLM: &str = r#"{
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "claude-sonnet-4-5": {
            "input_cost_per_token": 3.3e-06, "output_cost_per_token": 1.5e-05,
            "cache_creation_input_token_cost": 3.75e-06,
            "cache_creation_input_token_cost_above_1hr": 7.0e-06,
            "cache_read_input_token_cost": 3.0e-07,
            "input_cost_per_token_above_200k_tokens": 6.0e-06,
            "output_cost_per_token_above_200k_tokens": 2.25e-05
        },
        "claude-opus-4-7": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05},
        "bedrock/claude-opus-4-7": {"input_cost_per_token": 9e-06, "output_cost_per_token": 9e-05},
        "dall-e-3": {"output_cost_per_image": 0.04},
        "brand-new-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}
    }"#;

    #[test]
    fn litellm_parse_and_defaults() {
        let t = PriceTable::from_litellm_json(LITELLM).unwrap();
        assert_eq!(t.len(), 4, "sample_spec and image-only entries are skipped");
        let s = t.lookup("claude-sonnet-4-5").unwrap();
        assert!(close(s.input, 3.3) && close(s.cache_write_1h, 7.0) && close(s.cache_read, 0.3));
        let lc = s.long_context.unwrap();
        assert!(close(lc.input, 6.0) && close(lc.output, 22.5));
        assert!(close(lc.cache_write_5m, 7.5) && close(lc.cache_write_1h, 12.0));
        assert!(close(lc.cache_read, 0.6));
        // Missing cache fields: 1.25x, 2x and 0.1x input.
        let o = t.lookup("claude-opus-4-7").unwrap();
        assert!(close(o.cache_write_5m, 6.25) && close(o.cache_write_1h, 10.0));
        assert!(close(o.cache_read, 0.5));
        assert_eq!(o.long_context, None);
        // The first-party id wins the normalised clash with a bedrock price.
        assert!(close(
            t.lookup("anthropic/claude-opus-4-7-20260101")
                .unwrap()
                .input,
            5.0
        ));
    }

    #[test]
    fn litellm_errors() {
        assert!(matches!(
            PriceTable::from_litellm_json("{\"a\": "),
            Err(PriceError::NotJson(_))
        ));
        assert!(matches!(
            PriceTable::from_litellm_json("[1]"),
            Err(PriceError::BadShape(_))
        ));
        assert_eq!(
            PriceTable::from_litellm_json("{\"x\": {\"mode\": \"image\"}}").unwrap_err(),
            PriceError::NoModels
        );
        assert!(matches!(
            PriceTable::from_json(
                r#"{"version": "v", "models": {"m": {"input": -1, "output": 1}}}"#
            ),
            Err(PriceError::BadEntry { .. })
        ));
        assert!(!PriceError::NoModels.to_string().is_empty());
    }

    #[test]
    fn overrides_win_and_keep_fast_factors() {
        let merged = PriceTable::from_litellm_json(LITELLM)
            .unwrap()
            .merged_over(PriceTable::builtin());
        assert!(merged.version().starts_with("litellm over 2026-"));
        // Override wins, exact and normalised.
        assert!(close(
            merged.lookup("claude-sonnet-4-5").unwrap().input,
            3.3
        ));
        assert!(close(
            merged.lookup("claude-sonnet-4-5-20250929").unwrap().input,
            3.3
        ));
        // The fast factor comes from the built-in table.
        assert_eq!(
            merged.lookup("claude-opus-4-7").unwrap().fast_multiplier,
            6.0
        );
        // Models only in the base are kept; new models are added.
        assert!(close(merged.lookup("claude-haiku-4-5").unwrap().input, 1.0));
        assert!(close(merged.lookup("brand-new-model").unwrap().output, 2.0));
        assert_eq!(
            merged.lookup("brand-new-model").unwrap().fast_multiplier,
            1.0
        );

        // An override with only a dated id still beats the base's exact id;
        // a provider-prefixed override does not.
        let dated = PriceTable::from_litellm_json(
            r#"{"claude-haiku-4-5-20251001": {"input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05},
                "bedrock/claude-opus-4-1": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}}"#,
        )
        .unwrap()
        .merged_over(PriceTable::builtin());
        assert!(close(dated.lookup("claude-haiku-4-5").unwrap().input, 2.0));
        assert!(close(dated.lookup("claude-opus-4-1").unwrap().input, 15.0));
        assert!(close(
            dated.lookup("bedrock/claude-opus-4-1").unwrap().input,
            1.0
        ));
    }
}
