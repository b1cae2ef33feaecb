//! Small helpers shared by the Claude and Codex parsers: lenient reads of
//! JSON fields and the bounded summary text of a message.

use serde_json::Value;

use super::CONTENT_TEXT_MAX_BYTES;

/// `v[key]` as a string slice, if it is a string.
pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `v[key]` as an owned non-empty string.
pub(super) fn owned_str(v: &Value, key: &str) -> Option<String> {
    str_field(v, key)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A JSON number as a non-negative integer count. Floats are rounded,
/// negatives and non-numbers give 0: token counts are never negative, and a
/// bad field must not poison a sum.
pub(super) fn count(v: Option<&Value>) -> i64 {
    let Some(v) = v else { return 0 };
    if let Some(i) = v.as_i64() {
        i.max(0)
    } else if v.as_u64().is_some() {
        i64::MAX
    } else if let Some(f) = v.as_f64() {
        if f.is_finite() && f > 0.0 {
            f.round().min(i64::MAX as f64) as i64
        } else {
            0
        }
    } else {
        0
    }
}

/// A JSON number of milliseconds, if it is one and not negative.
pub(super) fn millis(v: Option<&Value>) -> Option<i64> {
    let f = v?.as_f64()?;
    (f.is_finite() && f >= 0.0).then(|| f.round().min(i64::MAX as f64) as i64)
}

/// Seconds (possibly fractional) to whole milliseconds, if finite and not
/// negative.
pub(super) fn seconds_to_ms(s: f64) -> Option<i64> {
    (s.is_finite() && s >= 0.0).then(|| (s * 1000.0).round().min(i64::MAX as f64) as i64)
}

/// UTF-8 byte length as `i64`.
pub(super) fn byte_len(s: &str) -> i64 {
    i64::try_from(s.len()).unwrap_or(i64::MAX)
}

/// Builds [`super::MessageRec::content_text`]: parts joined by newlines,
/// stopped at [`CONTENT_TEXT_MAX_BYTES`] on a char boundary.
#[derive(Debug, Default)]
pub(super) struct Summary {
    /// The text so far; never longer than the limit.
    text: String,
}

impl Summary {
    /// Appends `part` (skipped if blank) on a new line.
    pub(super) fn push(&mut self, part: &str) {
        let part = part.trim();
        if part.is_empty() || self.text.len() >= CONTENT_TEXT_MAX_BYTES {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let room = CONTENT_TEXT_MAX_BYTES.saturating_sub(self.text.len());
        self.text.push_str(truncate(part, room));
    }

    /// The finished text.
    pub(super) fn finish(self) -> String {
        self.text
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char
/// boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The tool names of a line as a JSON array.
pub(super) fn tools_json(names: &[String]) -> String {
    Value::from(names.to_vec()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn summary_stops_at_limit() {
        let mut s = Summary::default();
        s.push("first");
        s.push("   ");
        s.push(&"€".repeat(1000));
        s.push("never");
        let text = s.finish();
        assert!(text.len() <= CONTENT_TEXT_MAX_BYTES);
        assert!(text.starts_with("first\n€"));
        assert!(!text.contains("never"));
    }

    #[test]
    fn counts_are_lenient() {
        assert_eq!(count(Some(&json!(12))), 12);
        assert_eq!(count(Some(&json!(-3))), 0);
        assert_eq!(count(Some(&json!(2.6))), 3);
        assert_eq!(count(Some(&json!("7"))), 0);
        assert_eq!(count(None), 0);
        assert_eq!(millis(Some(&json!(8))), Some(8));
        assert_eq!(millis(Some(&json!(-1))), None);
        assert_eq!(seconds_to_ms(0.1), Some(100));
        assert_eq!(tools_json(&[]), "[]");
        assert_eq!(tools_json(&["Bash".into()]), r#"["Bash"]"#);
    }
}
