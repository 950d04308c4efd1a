//! Physical Region Page entries (NVMe Base Specification 2.0, 4.1.1).
//!
//! A command names its data with PRP1 and PRP2: PRP1 is the first page;
//! PRP2 is the second page when the transfer touches exactly two, or the
//! address of a PRP list when it touches more. A list page holds 512
//! entries; when more pages remain than fit, its last entry points to the
//! next list page instead of to data.
//!
//! The driver transfers through its own bounce buffers, which start on a
//! page boundary and are physically contiguous, so every data page here is
//! `data + k * 4096`, and list pages are contiguous too.

use crate::regs::PAGE_SIZE;

/// PRP entries in one list page.
pub const ENTRIES_PER_LIST_PAGE: usize = PAGE_SIZE / 8;

/// The smallest unit a transfer is made of (the smallest logical block).
pub const TRANSFER_UNIT: usize = 512;

/// Why PRPs could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// A transfer of no bytes.
    Empty,
    /// The length is not a whole number of 512-byte units.
    UnalignedLength(usize),
    /// The data or list address is not on a page boundary.
    UnalignedAddress(u64),
    /// The list area is too small for the transfer: pages needed, pages
    /// there are.
    ListTooSmall {
        /// List pages the transfer needs.
        needed: usize,
        /// List pages available.
        available: usize,
    },
}

/// The two PRP fields of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prps {
    /// PRP Entry 1.
    pub prp1: u64,
    /// PRP Entry 2: the second page, a list, or 0.
    pub prp2: u64,
}

/// List pages needed to describe a transfer of `pages` pages.
pub fn list_pages_needed(pages: usize) -> usize {
    if pages <= 2 {
        return 0;
    }
    // Entries after the first page; every full page but the last gives up
    // its final slot to the chain pointer.
    let entries = pages - 1;
    if entries <= ENTRIES_PER_LIST_PAGE {
        1
    } else {
        (entries - 1).div_ceil(ENTRIES_PER_LIST_PAGE - 1)
    }
}

/// Builds the PRPs for `len` bytes at bus address `data`, with
/// `list_pages` pages of list space at bus address `list`. List entries
/// are handed to `write_entry(byte_offset_in_list_area, value)`.
pub fn build(
    data: u64,
    len: usize,
    list: u64,
    list_pages: usize,
    mut write_entry: impl FnMut(usize, u64),
) -> Result<Prps, PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if !len.is_multiple_of(TRANSFER_UNIT) {
        return Err(PrpError::UnalignedLength(len));
    }
    let page = PAGE_SIZE as u64;
    if !data.is_multiple_of(page) {
        return Err(PrpError::UnalignedAddress(data));
    }
    let pages = len.div_ceil(PAGE_SIZE);
    let page_address = |k: usize| data + (k * PAGE_SIZE) as u64;
    match pages {
        1 => Ok(Prps {
            prp1: data,
            prp2: 0,
        }),
        2 => Ok(Prps {
            prp1: data,
            prp2: page_address(1),
        }),
        _ => {
            if !list.is_multiple_of(page) {
                return Err(PrpError::UnalignedAddress(list));
            }
            let needed = list_pages_needed(pages);
            if needed > list_pages {
                return Err(PrpError::ListTooSmall {
                    needed,
                    available: list_pages,
                });
            }
            let mut slot = 0;
            for k in 1..pages {
                let last_in_page = slot % ENTRIES_PER_LIST_PAGE == ENTRIES_PER_LIST_PAGE - 1;
                if last_in_page && k < pages - 1 {
                    // More than one entry left: chain to the next list
                    // page, which follows this one.
                    write_entry(slot * 8, list + ((slot + 1) * 8) as u64);
                    slot += 1;
                }
                write_entry(slot * 8, page_address(k));
                slot += 1;
            }
            Ok(Prps {
                prp1: data,
                prp2: list,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;

    const DATA: u64 = 0x10_0000;
    const LIST: u64 = 0x80_0000;

    fn run(len: usize, list_pages: usize) -> (Result<Prps, PrpError>, BTreeMap<usize, u64>) {
        let mut entries = BTreeMap::new();
        let result = build(DATA, len, LIST, list_pages, |offset, value| {
            assert!(
                entries.insert(offset, value).is_none(),
                "entry written twice"
            );
        });
        (result, entries)
    }

    #[test]
    fn one_page_and_less() {
        let (prps, list) = run(512, 1);
        assert_eq!(
            prps,
            Ok(Prps {
                prp1: DATA,
                prp2: 0
            })
        );
        assert!(list.is_empty());
        assert_eq!(
            run(4096, 0).0,
            Ok(Prps {
                prp1: DATA,
                prp2: 0
            })
        );
    }

    #[test]
    fn two_pages_need_no_list() {
        let (prps, list) = run(8192, 0);
        assert_eq!(
            prps,
            Ok(Prps {
                prp1: DATA,
                prp2: DATA + 4096
            })
        );
        assert!(list.is_empty());
        // 4608 bytes still touch two pages.
        assert_eq!(run(4608, 0).0.unwrap().prp2, DATA + 4096);
    }

    #[test]
    fn three_pages_and_up_use_a_list() {
        let (prps, list) = run(128 * 1024, 1);
        assert_eq!(
            prps,
            Ok(Prps {
                prp1: DATA,
                prp2: LIST
            })
        );
        assert_eq!(list.len(), 31);
        for (i, (offset, value)) in list.iter().enumerate() {
            assert_eq!(*offset, i * 8);
            assert_eq!(*value, DATA + 4096 * (i as u64 + 1));
        }
        // 513 pages: exactly 512 entries fill one list page, no chain.
        let (_, list) = run(513 * 4096, 1);
        assert_eq!(list.len(), 512);
        assert_eq!(list[&(511 * 8)], DATA + 512 * 4096);
    }

    #[test]
    fn a_list_spanning_pages_chains_through_its_last_entry() {
        // 514 pages: 513 entries; the first list page holds 511 and a
        // pointer to the second, which holds the last two.
        assert_eq!(list_pages_needed(514), 2);
        let (prps, list) = run(514 * 4096, 2);
        assert_eq!(prps.unwrap().prp2, LIST);
        assert_eq!(list.len(), 514);
        assert_eq!(list[&(510 * 8)], DATA + 511 * 4096);
        assert_eq!(list[&(511 * 8)], LIST + 4096, "chain pointer");
        assert_eq!(list[&(512 * 8)], DATA + 512 * 4096);
        assert_eq!(list[&(513 * 8)], DATA + 513 * 4096);
        // Every data page appears once, in order.
        let data: std::vec::Vec<u64> = list.values().copied().filter(|v| *v < LIST).collect();
        let expected: std::vec::Vec<u64> = (1..514).map(|k| DATA + k * 4096).collect();
        assert_eq!(data, expected);
        assert_eq!(
            run(514 * 4096, 1).0,
            Err(PrpError::ListTooSmall {
                needed: 2,
                available: 1
            })
        );
        assert_eq!(list_pages_needed(1 + 511 * 2 + 1), 2);
        assert_eq!(list_pages_needed(1 + 511 * 2 + 2), 3);
    }

    #[test]
    fn unaligned_and_empty_transfers_are_refused() {
        assert_eq!(run(0, 1).0, Err(PrpError::Empty));
        assert_eq!(run(100, 1).0, Err(PrpError::UnalignedLength(100)));
        assert_eq!(run(4097, 1).0, Err(PrpError::UnalignedLength(4097)));
        assert_eq!(
            build(DATA + 8, 512, LIST, 1, |_, _| {}),
            Err(PrpError::UnalignedAddress(DATA + 8))
        );
        assert_eq!(
            build(DATA, 3 * 4096, LIST + 16, 1, |_, _| {}),
            Err(PrpError::UnalignedAddress(LIST + 16))
        );
    }
}
