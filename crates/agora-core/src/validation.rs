//! Validation failures with field paths, shared by every input type.

use std::fmt;

/// One failing field: a JSON-pointer-like dotted path (`pricing.currency`, `skills[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// An input that did not pass validation; carries every failing field, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl Invalid {
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError { path: path.into(), message: message.into() }])
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }

    /// The same errors with their paths re-rooted under `prefix`.
    pub fn at(mut self, prefix: &str) -> Self {
        for fe in &mut self.0 {
            fe.path = join_path(prefix, &fe.path);
        }
        self
    }

    /// Collects the error of `result` (re-rooted under `prefix`) and returns its value, if any.
    pub fn collect<T>(&mut self, prefix: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.at(prefix).0);
                None
            }
        }
    }

    /// `Ok(value)` when nothing failed.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Invalid> {
        if self.0.is_empty() { Ok(value()) } else { Err(self) }
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        // An index or a JSON pointer (schema failures) attaches without a dot.
        (false, false) if path.starts_with(['[', '/']) => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Checks a free-text field's length in characters (not bytes) and trims it.
pub fn text(value: &str, min: usize, max: usize) -> Result<String, Invalid> {
    let trimmed = value.trim();
    let n = trimmed.chars().count();
    if n < min {
        return Err(Invalid::field("", format!("must be at least {min} characters")));
    }
    if n > max {
        return Err(Invalid::field("", format!("must be at most {max} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(Invalid::field("", "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// An absolute `http`/`https` URL of bounded length. Only the shape is checked here;
/// where a URL is fetched by the server (webhooks), the SSRF guard checks it again.
pub fn http_url(value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    if v.len() > 2048 {
        return Err(Invalid::field("", "must be at most 2048 characters"));
    }
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| Invalid::field("", "must be an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || v.chars().any(char::is_whitespace) {
        return Err(Invalid::field("", "must be an absolute URL with a host"));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_reroots_paths() {
        let mut inv = Invalid::default();
        let _ = inv.collect::<()>("pricing", Err(Invalid::field("currency", "bad")));
        let _ = inv.collect::<()>("skills", Err(Invalid::field("[2]", "bad")));
        let _ = inv.collect::<()>("name", Err(Invalid::field("", "bad")));
        let paths: Vec<_> = inv.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["pricing.currency", "skills[2]", "name"]);
    }

    #[test]
    fn text_counts_characters_and_trims() {
        assert_eq!(text("  héllo ", 1, 5).as_deref(), Ok("héllo"));
        assert!(text("", 1, 5).is_err());
        assert!(text("abcdef", 1, 5).is_err());
        assert!(text("a\u{0}b", 1, 5).is_err());
    }

    #[test]
    fn urls_need_scheme_and_host() {
        assert!(http_url("https://example.com/x").is_ok());
        assert!(http_url("http://h").is_ok());
        assert!(http_url("ftp://h").is_err());
        assert!(http_url("https://").is_err());
        assert!(http_url("https://a b").is_err());
    }
}
