//! [`FixedString`]: text built in a fixed buffer, for log lines assembled
//! before there is a heap.

/// A string in a fixed buffer, for building log lines before (or without)
/// the heap. Text past the capacity is dropped.
pub struct FixedString<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> FixedString<N> {
    /// An empty string.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 strings are appended, cut at a char boundary.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for FixedString<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for FixedString<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut take = s.len().min(N - self.len);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write as _;

    #[test]
    fn truncates_at_char_boundary() {
        let mut s: FixedString<5> = FixedString::new();
        write!(s, "ab").unwrap();
        write!(s, "cé€").unwrap();
        assert_eq!(s.as_str(), "abcé");
    }
}
