//! Redaction of audit events: the one place that decides what of a tool input, a
//! permission message or an error text may be written to an audit log.
//!
//! Three rules, applied in this order to every JSON value and string of an event:
//! 1. a value under a key that names a secret (`api_key`, `x-api-key`, `Authorization`,
//!    `accessToken`, `password`, `client_secret`, `Cookie`, `credentials`, …: see
//!    [`is_secret_key`]) is replaced whole by `"[redacted]"`;
//! 2. in every string, each configured secret ([`Redactor::secret`]), every token that
//!    starts with a configured prefix ([`Redactor::token_prefix`]; `sk-ant-` by
//!    default) and the credential after `Bearer ` is replaced by `[redacted]`;
//! 3. strings longer than [`Redactor::max_string_bytes`] are cut with a
//!    `…[truncated N bytes]` marker, arrays longer than [`Redactor::max_items`] end with a
//!    `"[truncated N items]"` element, and nesting deeper than 16 levels is replaced by
//!    `"[truncated: nested too deep]"`.
//!
//! Redaction happens before truncation, so a secret cut in two by the limit is never
//! half kept.

use serde_json::{Map, Value};

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Deepest nesting kept; deeper values are replaced by a marker.
const MAX_DEPTH: usize = 16;

/// Secrets shorter than this are ignored: replacing every `a` of a log is no redaction.
const MIN_SECRET_BYTES: usize = 4;

/// Redacts secrets from audit events and truncates long values (see the module docs).
/// Cheap to clone.
///
/// ```
/// use claude_code::audit::Redactor;
/// use serde_json::json;
/// let r = Redactor::new().secret("hunter2-long").token_prefix("cch_");
/// let v = r.value(&json!({"headers": {"X-Api-Key": "k"},
///     "command": "curl -u me:hunter2-long -H 'x: cch_abc123'"}));
/// assert_eq!(v, json!({"headers": {"X-Api-Key": "[redacted]"},
///     "command": "curl -u me:[redacted] -H 'x: [redacted]'"}));
/// ```
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Vec<String>,
    prefixes: Vec<String>,
    max_string_bytes: usize,
    max_items: usize,
}

impl Default for Redactor {
    /// Secret keys, `Bearer` credentials and `sk-ant-` keys redacted; strings cut at
    /// 2048 bytes, arrays at 64 items.
    fn default() -> Self {
        Redactor {
            secrets: Vec::new(),
            prefixes: vec!["sk-ant-".into()],
            max_string_bytes: 2048,
            max_items: 64,
        }
    }
}

impl Redactor {
    /// The defaults (see [`Redactor::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces this exact string wherever it appears (e.g. the real API key). Strings
    /// shorter than 4 bytes are ignored.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        if secret.len() >= MIN_SECRET_BYTES && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        self
    }

    /// Replaces every token that starts with `prefix` (followed by letters, digits, `_`,
    /// `-` or `.`), e.g. `"cch_"` for the host's bearer tokens.
    #[must_use]
    pub fn token_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        if !prefix.is_empty() && !self.prefixes.contains(&prefix) {
            self.prefixes.push(prefix);
        }
        self
    }

    /// Longest string kept, in bytes (default 2048; at least 16).
    #[must_use]
    pub fn max_string_bytes(mut self, bytes: usize) -> Self {
        self.max_string_bytes = bytes.max(16);
        self
    }

    /// Most array items kept (default 64; at least 1).
    #[must_use]
    pub fn max_items(mut self, items: usize) -> Self {
        self.max_items = items.max(1);
        self
    }

    /// `value` with secrets redacted and long parts truncated.
    pub fn value(&self, value: &Value) -> Value {
        self.walk(value, 0)
    }

    /// `text` with secrets redacted, truncated to the limit.
    pub fn text(&self, text: &str) -> String {
        truncate(self.scrub(text), self.max_string_bytes)
    }

    fn walk(&self, value: &Value, depth: usize) -> Value {
        if depth >= MAX_DEPTH {
            return Value::String("[truncated: nested too deep]".into());
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => {
                let mut out: Vec<Value> = items
                    .iter()
                    .take(self.max_items)
                    .map(|v| self.walk(v, depth + 1))
                    .collect();
                if items.len() > self.max_items {
                    out.push(Value::String(format!(
                        "[truncated {} items]",
                        items.len() - self.max_items
                    )));
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        self.walk(v, depth + 1)
                    };
                    out.insert(self.scrub(k), v);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// Replaces configured secrets, prefixed tokens and `Bearer` credentials.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for prefix in &self.prefixes {
            out = replace_tokens(&out, prefix, false);
        }
        replace_tokens(&out, "bearer ", true)
    }
}

/// Whether a JSON key names a secret: one of its words (split at `_`, `-`, `.`, spaces
/// and camelCase humps, compared case-insensitively) is `password`, `passwd`, `secret`,
/// `token`, `cookie`, `authorization`, `credential(s)`, `apikey` or `bearer`, or two
/// adjacent words are `api key`, `private key` or `access key`. So `api_key`,
/// `x-api-key`, `Authorization`, `accessToken`, `Set-Cookie` and `db_password` are
/// secret; `max_tokens`, `tokenizer` and `key` are not.
pub fn is_secret_key(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "password",
        "passwd",
        "secret",
        "token",
        "cookie",
        "authorization",
        "credential",
        "credentials",
        "apikey",
        "bearer",
        "passphrase",
    ];
    const PAIRS: [(&str, &str); 3] = [("api", "key"), ("private", "key"), ("access", "key")];
    let words = words(key);
    words.iter().any(|w| WORDS.contains(&w.as_str()))
        || words
            .windows(2)
            .any(|p| PAIRS.contains(&(p[0].as_str(), p[1].as_str())))
}

/// A key's words, lowercase.
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if matches!(c, '_' | '-' | '.' | ' ' | ':') {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// A byte that may continue a token (`A-Z a-z 0-9 _ - . + / =`, base64 and key alphabets).
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=')
}

/// Replaces the token after each occurrence of `prefix` (ASCII case-insensitive when
/// `keep_prefix`, which keeps the prefix itself: `Bearer [redacted]`; otherwise the
/// prefix goes too and the match is case-sensitive).
fn replace_tokens(text: &str, prefix: &str, keep_prefix: bool) -> String {
    let bytes = text.as_bytes();
    let p = prefix.as_bytes();
    if p.is_empty() || bytes.len() < p.len() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + p.len() <= bytes.len() {
        let window = &bytes[i..i + p.len()];
        let hit = if keep_prefix {
            window.eq_ignore_ascii_case(p)
        } else {
            window == p
        };
        // A prefix inside a longer word (`xsk-ant-`) still counts: the secret follows.
        if !hit {
            i += 1;
            continue;
        }
        let mut end = i + p.len();
        while end < bytes.len() && token_byte(bytes[end]) {
            end += 1;
        }
        if end == i + p.len() {
            i = end;
            continue; // nothing after the prefix
        }
        let start = if keep_prefix { i + p.len() } else { i };
        // `i`, `start` and `end` sit at ASCII bytes (or the end): char boundaries.
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Cuts `text` to at most `max` bytes (at a char boundary) plus a marker.
fn truncate(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_recognised_and_ordinary_keys_are_not() {
        for key in [
            "api_key",
            "API_KEY",
            "x-api-key",
            "X-Api-Key",
            "apiKey",
            "Authorization",
            "proxy-authorization",
            "token",
            "accessToken",
            "refresh_token",
            "password",
            "db_password",
            "client_secret",
            "secret",
            "Cookie",
            "set-cookie",
            "credentials",
            "aws_access_key_id",
            "private_key",
        ] {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "max_tokens",
            "tokenizer",
            "key",
            "command",
            "description",
            "path",
            "author",
            "monkey",
        ] {
            assert!(!is_secret_key(key), "{key} should not be secret");
        }
    }

    #[test]
    fn nested_objects_and_arrays_are_redacted_by_key() {
        let r = Redactor::new();
        let v = r.value(&json!({
            "command": "ls",
            "headers": [{"Authorization": "Bearer abc"}, {"accept": "json"}],
            "deep": {"config": {"credentials": {"user": "u", "pass": "p"}, "port": 5}},
            "list": [[{"password": 1}]],
            "token": null
        }));
        assert_eq!(
            v,
            json!({
                "command": "ls",
                "headers": [{"Authorization": "[redacted]"}, {"accept": "json"}],
                "deep": {"config": {"credentials": "[redacted]", "port": 5}},
                "list": [[{"password": "[redacted]"}]],
                "token": null
            })
        );
    }

    #[test]
    fn configured_secrets_prefixed_tokens_and_bearer_credentials_are_replaced_in_strings() {
        let r = Redactor::new()
            .secret("sk-real-key-123456")
            .token_prefix("cch_");
        let v = r.value(&json!({
            "command": "curl -H 'x-api-key: sk-real-key-123456' https://x",
            "args": ["--token=cch_AbC-12_x.y", "plain", "use sk-ant-api03-zzz now"],
            "note": "Authorization: bearer eyJhbGciOi.x.y end",
            "nested": {"s": ["twice: sk-real-key-123456 sk-real-key-123456"]}
        }));
        assert_eq!(
            v,
            json!({
                "command": "curl -H 'x-api-key: [redacted]' https://x",
                "args": ["--token=[redacted]", "plain", "use [redacted] now"],
                "note": "Authorization: bearer [redacted] end",
                "nested": {"s": ["twice: [redacted] [redacted]"]}
            })
        );
        assert_eq!(r.text("cch_ alone"), "cch_ alone", "a bare prefix is kept");
        let short = Redactor::new().secret("ab");
        assert_eq!(short.text("abc"), "abc", "too-short secrets are ignored");
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let r = Redactor::new().secret("abcd").secret("abcdefgh");
        assert_eq!(r.text("x abcdefgh y abcd"), "x [redacted] y [redacted]");
    }

    #[test]
    fn long_strings_arrays_and_deep_nesting_are_truncated_with_markers() {
        let r = Redactor::new().max_string_bytes(16).max_items(2);
        let long = "é".repeat(20); // 40 bytes
        let v = r.value(&json!({"s": long, "a": [1, 2, 3, 4]}));
        let s = v["s"].as_str().expect("string");
        assert!(s.starts_with("éééééééé…[truncated 24 bytes]"), "{s}");
        assert_eq!(v["a"], json!([1, 2, "[truncated 2 items]"]));
        let mut deep = json!("bottom");
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        let v = Redactor::new().value(&deep);
        let text = v.to_string();
        assert!(text.contains("[truncated: nested too deep]"), "{text}");
        assert!(!text.contains("bottom"));
    }

    #[test]
    fn a_secret_is_redacted_before_the_cut_so_no_half_survives() {
        let r = Redactor::new()
            .secret("SECRETSECRETSECRET")
            .max_string_bytes(20);
        let t = r.text("0123456789SECRETSECRETSECRET");
        assert!(!t.contains("SECRET"), "{t}");
    }
}
