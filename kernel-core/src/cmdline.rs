//! The kernel command line: space-separated `key=value` words and bare flags.
//!
//! The line comes from the boot loader's configuration, outside the kernel's
//! control, as raw bytes. A word that is not valid UTF-8 is not understood and
//! is skipped; every other word keeps its meaning, so one stray byte cannot
//! silence switches such as `exit=qemu`. [`CommandLine::not_understood`] names
//! the skipped words so the kernel can report them.

use core::fmt;

/// A parsed view of the command line; borrows the original bytes.
#[derive(Clone, Copy, Debug)]
pub struct CommandLine<'a> {
    bytes: &'a [u8],
}

impl<'a> CommandLine<'a> {
    /// Wraps a command line given as bytes (any bytes).
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Every word, understood or not.
    fn raw_words(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        self.bytes
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
    }

    /// The words that are valid UTF-8, in order.
    pub fn words(&self) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        self.raw_words()
            .filter_map(|w| core::str::from_utf8(w).ok())
    }

    /// The words that are not valid UTF-8 and were skipped, in order.
    pub fn not_understood(&self) -> impl Iterator<Item = Escaped<'a>> + 'a {
        self.raw_words()
            .filter(|w| core::str::from_utf8(w).is_err())
            .map(Escaped)
    }

    /// The value of the last `key=value` word for `key`; `Some("")` for a bare
    /// `key` word.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words()
            .rev()
            .find_map(|word| match word.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if word == key => Some(""),
                _ => None,
            })
    }

    /// Whether `key` has exactly `value`.
    pub fn is(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The whole line for display, bytes that are not printable ASCII
    /// written as `\xNN`.
    pub fn escaped(&self) -> Escaped<'a> {
        Escaped(self.bytes)
    }
}

/// Bytes shown with everything but printable ASCII as `\xNN`, so a log line
/// stays one line of plain text whatever the loader handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn finds_values_flags_and_last_wins() {
        let c = CommandLine::new(b"  exit=qemu test=panic quiet test=page-fault ");
        assert_eq!(c.get("exit"), Some("qemu"));
        assert_eq!(c.get("test"), Some("page-fault"));
        assert_eq!(c.get("quiet"), Some(""));
        assert_eq!(c.get("missing"), None);
        assert!(c.is("exit", "qemu"));
        assert!(!c.is("exit", "qem"));
        assert_eq!(c.not_understood().count(), 0);
    }

    #[test]
    fn empty_line_has_nothing() {
        assert_eq!(CommandLine::new(b"").get("exit"), None);
    }

    #[test]
    fn key_prefix_is_not_a_match() {
        assert_eq!(CommandLine::new(b"exits=1 exit").get("exit"), Some(""));
    }

    #[test]
    fn a_non_utf8_word_is_named_and_the_others_kept() {
        let c = CommandLine::new(b"exit=qemu bad=\xff\xfe test=panic\t\xc3");
        assert!(c.is("exit", "qemu"));
        assert_eq!(c.get("test"), Some("panic"));
        assert_eq!(c.get("bad"), None);
        let skipped: Vec<_> = c.not_understood().map(|w| w.to_string()).collect();
        assert_eq!(skipped, ["bad=\\xff\\xfe", "\\xc3"]);
        assert_eq!(
            c.escaped().to_string(),
            "exit=qemu bad=\\xff\\xfe test=panic\\x09\\xc3"
        );
    }

    #[test]
    fn fuzz_cmdline() {
        stratus_fuzz::fuzz(
            "cmdline",
            &[
                b"exit=qemu test=page-fault",
                b"quiet \xff exit=qemu",
                b"a=b=c ==  =x x=",
            ],
            |input| {
                let c = CommandLine::new(input);
                let understood = c.words().count();
                let skipped = c.not_understood().count();
                assert_eq!(understood + skipped, c.raw_words().count());
                for word in c.words() {
                    let key = word.split_once('=').map_or(word, |(k, _)| k);
                    assert!(c.get(key).is_some(), "word {word:?} lost");
                }
                // The escaped form is printable ASCII on one line.
                let shown = c.escaped().to_string();
                assert!(shown.bytes().all(|b| (0x20..0x7f).contains(&b)));
            },
        );
    }
}
