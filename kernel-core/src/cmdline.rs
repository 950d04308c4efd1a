//! The kernel command line: space-separated `key=value` words and bare flags.

/// A parsed view of the command line; borrows the original string.
#[derive(Clone, Copy, Debug)]
pub struct CommandLine<'a> {
    text: &'a str,
}

impl<'a> CommandLine<'a> {
    /// Wraps a command line.
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// The value of the last `key=value` word for `key`; `Some("")` for a bare
    /// `key` word.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.text
            .split_ascii_whitespace()
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

    /// The raw text.
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_flags_and_last_wins() {
        let c = CommandLine::new("  exit=qemu test=panic quiet test=page-fault ");
        assert_eq!(c.get("exit"), Some("qemu"));
        assert_eq!(c.get("test"), Some("page-fault"));
        assert_eq!(c.get("quiet"), Some(""));
        assert_eq!(c.get("missing"), None);
        assert!(c.is("exit", "qemu"));
        assert!(!c.is("exit", "qem"));
    }

    #[test]
    fn empty_line_has_nothing() {
        assert_eq!(CommandLine::new("").get("exit"), None);
    }

    #[test]
    fn key_prefix_is_not_a_match() {
        assert_eq!(CommandLine::new("exits=1 exit").get("exit"), Some(""));
    }
}
