//! Text from the network, made safe to print: names, addresses, tags and
//! messages come from any peer, and a control character in them could
//! forge a line of `daust list`, retitle the terminal (`ESC ] 0 ;`), or
//! write a shell line into a log. Every text output and log line goes
//! through here; `--json`, `--dot` and `daust top` escape on their own.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal or a log as it is: C0 and C1
/// controls, DEL, and the bidirectional overrides that reorder what a
/// reader sees.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as an escape (`\n`, `\t`,
/// `\x1b`, `\u{202e}`); unchanged (and not copied) when there is none.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Displays a string [`clean`]ed: `format!("{}", Clean(&name))`.
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clean(self.0))
    }
}

/// One formatted log line made safe: every unsafe character escaped but
/// the line's own final newline, and (with `colours`) the colour codes the
/// log formatter adds (`ESC [ digits ; m`), which only colour text.
pub fn clean_log_line(line: &str, colours: bool) -> Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    if !body.chars().any(unsafe_char) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if colours && c == '\u{1b}' {
            if let Some(sgr) = sgr_prefix(rest) {
                out.push_str(sgr);
                rest = &rest[sgr.len()..];
                continue;
            }
        }
        out.push_str(&clean(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    if line.ends_with('\n') {
        out.push('\n');
    }
    Cow::Owned(out)
}

/// `ESC [ (digits | ;)* m` at the start of `s`, if it is there.
fn sgr_prefix(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.get(1) != Some(&b'[') {
        return None;
    }
    let end = b[2..]
        .iter()
        .position(|x| !(x.is_ascii_digit() || *x == b';'))?
        + 2;
    (b.get(end) == Some(&b'm')).then(|| &s[..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(clean("vm1"), Cow::Borrowed("vm1")));
        assert_eq!(
            clean("a\nb: internal ip 6.6.6.6"),
            "a\\nb: internal ip 6.6.6.6"
        );
        assert_eq!(clean("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(clean("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(clean("tab\there\0"), "tab\\there\\x00");
        assert_eq!(clean("\u{85}"), "\\x85");
        assert_eq!(Clean("é ünïcode").to_string(), "é ünïcode");
    }

    #[test]
    fn log_lines_keep_their_newline_and_colours_only() {
        assert_eq!(clean_log_line("a\nb\n", false), "a\\nb\n");
        let coloured = "\u{1b}[32m INFO\u{1b}[0m name=\u{1b}]0;x\u{7}\n";
        assert_eq!(
            clean_log_line(coloured, true),
            "\u{1b}[32m INFO\u{1b}[0m name=\\x1b]0;x\\x07\n"
        );
        assert_eq!(clean_log_line("\u{1b}[32m", false), "\\x1b[32m");
    }
}
