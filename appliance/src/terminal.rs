//! Text from outside nodus (a process's argv, a remote board's messages)
//! on its way to a terminal.
//!
//! Control characters in it would reach the operator's terminal as
//! commands: clear the screen, move the cursor to rewrite earlier lines,
//! set the window title, or on some terminals make it type back. Bidi
//! overrides would make a line read differently from what it holds. Each
//! such character is shown as an escape (`\x1b`, `\u{202e}`) instead, so
//! the line is what it says and nothing more.

use std::{borrow::Cow, fmt::Write};

/// Whether `c` must not reach a terminal as itself.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character and bidi override escaped; borrowed
/// when there is none (the common case costs nothing).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert!(matches!(printable("plain text é"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(printable("\x07\r\n\t\x7f"), "\\x07\\x0d\\x0a\\x09\\x7f");
        assert_eq!(printable("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
    }
}
