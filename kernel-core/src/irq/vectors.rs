//! Allocation of interrupt ids (x86 vectors, GIC SGIs now; MSI vectors and
//! LPIs next) from the range a controller offers.

use core::ops::Range;

/// Largest id the allocator tracks (exclusive): every x86 vector and GIC
/// SGI/PPI/SPI, and the first 1024 LPIs (8192..9216) for MSIs.
pub const MAX_IDS: u32 = 8192 + 1024;

/// Why an id could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    /// Every id of the range is taken.
    Exhausted,
    /// The id is outside the range.
    OutOfRange(u32),
    /// The id is already taken.
    Taken(u32),
}

/// A bitmap of taken ids over a range.
#[derive(Clone, Debug)]
pub struct VectorAllocator {
    range: Range<u32>,
    taken: [u64; (MAX_IDS / 64) as usize],
}

impl VectorAllocator {
    /// An allocator over `range`, clipped to `0..MAX_IDS`.
    pub const fn new(range: Range<u32>) -> Self {
        let end = if range.end > MAX_IDS {
            MAX_IDS
        } else {
            range.end
        };
        Self {
            range: range.start..end,
            taken: [0; (MAX_IDS / 64) as usize],
        }
    }

    fn bit(id: u32) -> (usize, u64) {
        ((id / 64) as usize, 1u64 << (id % 64))
    }

    /// Whether `id` is taken.
    pub fn is_taken(&self, id: u32) -> bool {
        let (word, mask) = Self::bit(id);
        self.taken.get(word).is_some_and(|w| w & mask != 0)
    }

    /// Takes the lowest free id.
    pub fn allocate(&mut self) -> Result<u32, VectorError> {
        let id = self
            .range
            .clone()
            .find(|&id| !self.is_taken(id))
            .ok_or(VectorError::Exhausted)?;
        self.reserve(id)?;
        Ok(id)
    }

    /// Takes a given id (a fixed line's id).
    pub fn reserve(&mut self, id: u32) -> Result<(), VectorError> {
        if !self.range.contains(&id) {
            return Err(VectorError::OutOfRange(id));
        }
        if self.is_taken(id) {
            return Err(VectorError::Taken(id));
        }
        let (word, mask) = Self::bit(id);
        self.taken[word] |= mask;
        Ok(())
    }

    /// Gives an id back; freeing a free or foreign id does nothing.
    pub fn free(&mut self, id: u32) {
        if self.range.contains(&id) {
            let (word, mask) = Self::bit(id);
            self.taken[word] &= !mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_runs_out() {
        let mut a = VectorAllocator::new(48..51);
        assert_eq!(a.allocate(), Ok(48));
        assert_eq!(a.reserve(50), Ok(()));
        assert_eq!(a.allocate(), Ok(49));
        assert_eq!(a.allocate(), Err(VectorError::Exhausted));
        a.free(48);
        assert_eq!(a.allocate(), Ok(48));
        assert_eq!(a.reserve(50), Err(VectorError::Taken(50)));
        assert_eq!(a.reserve(47), Err(VectorError::OutOfRange(47)));
        a.free(MAX_IDS + 5000);
    }

    #[test]
    fn range_is_clipped() {
        let mut a = VectorAllocator::new(MAX_IDS - 4..MAX_IDS + 100);
        for _ in 0..4 {
            a.allocate().unwrap();
        }
        assert_eq!(a.allocate(), Err(VectorError::Exhausted));
    }
}
