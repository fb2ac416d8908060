//! Redaction of a command's output before it is logged: JWT-like tokens,
//! the values of secret-looking allowlisted variables, and presigned-URL
//! signatures become `***`.

/// Replaces JWT-like tokens and known secret values with `***`.
pub(super) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(super) fn new(mut secrets: Vec<String>) -> Self {
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    pub(super) fn redact(&self, line: &str) -> String {
        let mut out = redact_signatures(&redact_jwts(line));
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Replaces every `eyJ<b64url>.<b64url>.<b64url>` with `***`.
fn redact_jwts(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = line.get(i..).and_then(|s| s.find("eyJ")) {
        let start = i + found;
        // Three base64url segments separated by two dots.
        let mut end = start;
        let mut dots = 0;
        let mut segment_len = 0;
        while let Some(&b) = bytes.get(end) {
            if is_b64url(b) {
                segment_len += 1;
            } else if b == b'.' && dots < 2 && segment_len > 0 {
                dots += 1;
                segment_len = 0;
            } else {
                break;
            }
            end += 1;
        }
        if dots == 2 && segment_len > 0 {
            out.push_str(line.get(copied..start).unwrap_or_default());
            out.push_str("***");
            copied = end;
            i = end;
        } else {
            i = start + 3;
        }
    }
    out.push_str(line.get(copied..).unwrap_or_default());
    out
}

/// Replaces the value of every `X-Amz-Signature=` (any case) with `***`,
/// so a presigned URL the child prints is useless in the logs.
fn redact_signatures(line: &str) -> String {
    const KEY: &str = "x-amz-signature=";
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower.get(from..).and_then(|rest| rest.find(KEY)) {
        let value_start = from + found + KEY.len();
        let value_len = lower
            .get(value_start..)
            .unwrap_or_default()
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        out.push_str(line.get(copied..value_start).unwrap_or_default());
        out.push_str("***");
        copied = value_start + value_len;
        from = copied;
    }
    out.push_str(line.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_and_secret_values_are_redacted() {
        let r = Redactor::new(vec!["hunter22".into()]);
        let line = "token=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_x pw=hunter22 eyJnot.a";
        assert_eq!(r.redact(line), "token=*** pw=*** eyJnot.a");
    }

    #[test]
    fn presigned_signatures_are_redacted() {
        let r = Redactor::new(Vec::new());
        let line = "GET http://127.0.0.1:9/b/k?X-Amz-Date=1&X-Amz-Signature=ab12cd&x=1 \
                    x-amz-signature=FFee00 X-Amz-Signature=";
        assert_eq!(
            r.redact(line),
            "GET http://127.0.0.1:9/b/k?X-Amz-Date=1&X-Amz-Signature=***&x=1 \
                    x-amz-signature=*** X-Amz-Signature=***"
        );
    }
}
