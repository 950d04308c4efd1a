//! Page allocation requests: how many pages to ask the firmware for so that an
//! aligned run of pages fits, and how to describe the request when it fails.

use core::fmt;

use crate::PAGE_SIZE;

/// A run of `pages` pages whose physical start must be a multiple of `align`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Pages the caller needs.
    pub pages: u64,
    /// Physical alignment (a power of two, at least [`PAGE_SIZE`]).
    pub align: u64,
}

impl PageRequest {
    /// A request for `pages` pages (at least one) aligned to `align` (raised to
    /// a page when smaller).
    #[must_use]
    pub fn new(pages: u64, align: u64) -> Self {
        Self {
            pages: pages.max(1),
            align: align.max(PAGE_SIZE),
        }
    }

    /// Pages allocated beyond the needed ones so an aligned start exists in any
    /// page-aligned allocation (UEFI's `AllocatePages` cannot align by itself).
    #[must_use]
    pub const fn slack_pages(&self) -> u64 {
        self.align / PAGE_SIZE - 1
    }

    /// Pages to ask the firmware for: the needed ones plus the slack; `None`
    /// when that overflows.
    #[must_use]
    pub const fn firmware_pages(&self) -> Option<u64> {
        self.pages.checked_add(self.slack_pages())
    }
}

impl fmt::Display for PageRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.align == PAGE_SIZE {
            return write!(f, "{} pages", self.pages);
        }
        match self.firmware_pages() {
            Some(total) => write!(
                f,
                "{total} pages ({} needed, {:#x}-aligned)",
                self.pages, self.align
            ),
            None => write!(
                f,
                "{} pages {:#x}-aligned (the request overflows)",
                self.pages, self.align
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_request_reports_what_is_asked_of_the_firmware() {
        // 23 pages aligned to 1 GiB: the firmware is asked for 23 + 262143 pages.
        let r = PageRequest::new(23, 1 << 30);
        assert_eq!(r.firmware_pages(), Some(23 + (1 << 18) - 1));
        assert_eq!(
            r.to_string(),
            "262166 pages (23 needed, 0x40000000-aligned)"
        );
        let r = PageRequest::new(23, PAGE_SIZE);
        assert_eq!(r.firmware_pages(), Some(23));
        assert_eq!(r.to_string(), "23 pages");
        assert_eq!(PageRequest::new(0, 1).pages, 1);
        let r = PageRequest::new(u64::MAX, 0x2000);
        assert_eq!(r.firmware_pages(), None);
        assert!(r.to_string().contains("overflows"));
    }
}
