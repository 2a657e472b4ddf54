//! Redaction of the secrets a URL can carry in an error text: the credentials before
//! the host (`https://user:pass@host`) and the query string and fragment (a presigned
//! request's `X-Amz-Signature`, an API key). Probe errors pass through [`redact_urls`]
//! where they are made, so the status, the audit evidence, the logs and recorded
//! traces never see those parts.
//!
//! What counts as a URL: a scheme (a letter, then letters, digits, `+`, `-`, `.`),
//! `://`, and every following character up to whitespace, a quote or `<`/`>`; at its
//! end, `.`, `,`, `;`, `:`, `!` and a closing `)` or `]` that opens nowhere inside it
//! belong to the text around it (`for url (https://host/x): ...`). The authority ends at the first `/`, `\`,
//! `?` or `#`, and its credentials end at its last `@`, as a browser's URL parser
//! reads them. Text without `://` comes back unchanged.

/// A configuration error's text with the secrets a value may carry removed: every
/// URL's (as [`redact_urls`]), and, in a word without a scheme that looks like an
/// address (`host/path?token=...`, `user:pass@host`), the query string, the fragment
/// and the credentials. Config errors echo values and quote lines of the file; a
/// probe URL may carry a presigned signature or an API key.
pub fn redact_config_text(text: &str) -> String {
    let text = redact_urls(text);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '(' | ')' | ',') {
            out.push_str(&redact_word(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&redact_word(&word));
    out
}

/// One word of a config error without a scheme: its query and fragment, and
/// `user:pass@` before a host.
fn redact_word(word: &str) -> String {
    if word.contains("://") {
        return word.to_owned();
    }
    let mut w = word.to_owned();
    if let Some(at) = w.find('@')
        && w[..at].contains(':')
        && !w[..at].contains('/')
    {
        w = w[at + 1..].to_owned();
    }
    if let Some(q) = w.find(['?', '#'])
        && q + 1 < w.len()
        && !w[q + 1..].starts_with(REDACTED)
    {
        w.truncate(q + 1);
        w.push_str(REDACTED);
    }
    w
}

/// What replaces a query string or fragment.
pub const REDACTED: &str = "<redacted>";

/// `text` with every URL's credentials removed and its query string and fragment
/// replaced by [`REDACTED`]: `https://user:pass@host/path?query` becomes
/// `https://host/path?<redacted>`. Applying it twice changes nothing more.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let bytes = rest.as_bytes();
        let mut start = sep;
        while start > 0 && is_scheme_byte(bytes[start - 1]) {
            start -= 1;
        }
        // A scheme starts with a letter.
        while start < sep && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        if start == sep {
            out.push_str(&rest[..sep + 3]);
            rest = &rest[sep + 3..];
            continue;
        }
        let end = url_end(rest, sep + 3);
        out.push_str(&rest[..start]);
        redact_one(&rest[start..sep + 3], &rest[sep + 3..end], &mut out);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Where the URL that starts before `from` ends in `text`.
fn url_end(text: &str, from: usize) -> usize {
    let len = text[from..]
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
        .unwrap_or(text.len() - from);
    let mut end = from + len;
    // Give back the punctuation of the sentence around it, and closing brackets that
    // close something outside the URL.
    loop {
        let url = &text[from..end];
        let unbalanced = |open: char, close: char| {
            url.ends_with(close) && url.matches(close).count() > url.matches(open).count()
        };
        if url.ends_with(['.', ',', ';', ':', '!']) || unbalanced('(', ')') || unbalanced('[', ']')
        {
            end -= 1;
        } else {
            return end;
        }
    }
}

/// One URL given on its own (a configured one that did not parse, say), all of it
/// taken as the URL whatever it contains, with or without a scheme.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let split = url.find("://").map_or(0, |sep| sep + 3);
    redact_one(&url[..split], &url[split..], &mut out);
    out
}

/// Appends the URL `scheme` (up to and with `://`) `after` without credentials,
/// query or fragment.
fn redact_one(scheme: &str, after: &str, out: &mut String) {
    let authority_len = after.find(['/', '\\', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(authority_len);
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    out.push_str(scheme);
    out.push_str(host);
    match tail.find(['?', '#']) {
        // `?` or `#` with nothing after it hides nothing.
        Some(q) if q + 1 < tail.len() => {
            out.push_str(&tail[..=q]);
            out.push_str(REDACTED);
        }
        _ => out.push_str(tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_queries_are_removed_from_error_texts() {
        for (text, want) in [
            // reqwest's error texts
            (
                "error sending request for url (https://host/x?X-Amz-Signature=abc)",
                "error sending request for url (https://host/x?<redacted>)",
            ),
            (
                "error sending request for url (https://user:pass@host/x?X-Amz-Signature=abc): \
                 client error (Connect): tcp connect error: Connection refused (os error 111)",
                "error sending request for url (https://host/x?<redacted>): \
                 client error (Connect): tcp connect error: Connection refused (os error 111)",
            ),
            (
                "error following redirect for url (http://a.example/b?c=d#frag)",
                "error following redirect for url (http://a.example/b?<redacted>)",
            ),
            (
                "error decoding response body for url (https://u@h.example:8443/p)",
                "error decoding response body for url (https://h.example:8443/p)",
            ),
            // a URL in Debug quotes, an IPv6 host, a bare host
            (
                "invalid url \"https://user:pa%40ss@[::1]:8080/a?token=s3cret\"",
                "invalid url \"https://[::1]:8080/a?<redacted>\"",
            ),
            ("GET https://user:pass@host", "GET https://host"),
            ("see http://host/p#section", "see http://host/p#<redacted>"),
            (
                "empty query http://host/p? ok",
                "empty query http://host/p? ok",
            ),
            // two URLs, one redirecting to the other
            (
                "http://a/x?k=1 -> https://b:c@d/y?sig=2, then failed",
                "http://a/x?<redacted> -> https://d/y?<redacted>, then failed",
            ),
            // brackets that belong to the URL stay
            ("at (http://h/w(1)?q=1)", "at (http://h/w(1)?<redacted>)"),
            // no URL: unchanged
            (
                "tcp connect error: Connection refused (os error 111)",
                "tcp connect error: Connection refused (os error 111)",
            ),
            ("a :// b", "a :// b"),
            ("1://x?y", "1://x?y"),
            ("", ""),
            (
                "ünïcode https://ü:p@hôst/ä?ö=1 é",
                "ünïcode https://hôst/ä?<redacted> é",
            ),
        ] {
            let got = redact_urls(text);
            assert_eq!(got, want, "{text:?}");
            assert_eq!(redact_urls(&got), got, "not idempotent on {text:?}");
        }
    }

    #[test]
    fn a_single_url_is_redacted_whatever_it_contains() {
        assert_eq!(
            redact_url("http://user:hunter2@exa mple.com/?k=hunter2 x"),
            "http://exa mple.com/?<redacted>"
        );
        assert_eq!(redact_url("u:p@host/p?q#f"), "host/p?<redacted>");
        assert_eq!(redact_url("https://host/p"), "https://host/p");
    }

    #[test]
    fn a_secret_never_survives_whatever_follows_it() {
        for text in [
            "for url (https://user:hunter2@host/x?sig=hunter2)",
            "https://user:hunter2@host?sig=hunter2,more=hunter2",
            "(https://host/x?sig=hunter2))",
            "https://host/x?a=1&sig=hunter2)trailing",
            "https://user:hunter2@host#hunter2",
            "s3://key:hunter2@bucket/k?versionId=hunter2",
        ] {
            let got = redact_urls(text);
            assert!(!got.contains("hunter2"), "{text:?} -> {got:?}");
        }
    }

    #[test]
    fn config_errors_lose_every_secret_a_value_can_carry() {
        for text in [
            r#"probes[0].url = "ftp://u:hunter2@h/?X-Amz-Signature=hunter2": must start with http:// or https://"#,
            r#"probes[0].url = "h/?token=hunter2": must start with http:// or https://"#,
            r#"probes[0].url = "u:hunter2@h/x": must start with http:// or https://"#,
            "TOML parse error at line 3: url = \"https://h/p#hunter2\"",
            r#"x = "h#hunter2""#,
        ] {
            let got = redact_config_text(text);
            assert!(!got.contains("hunter2"), "{got}");
        }
        // nothing else is touched
        let plain =
            "monitor.mode = \"auto!\": must be one of \"auto\", \"manual\" (ops@example.com)";
        assert_eq!(redact_config_text(plain), plain);
    }
}
