//! Ring arithmetic of submission and completion queues (NVMe Base
//! Specification 2.0, 3.3.1), apart from the memory they describe.
//!
//! A submission queue of `n` entries is full when its tail is one behind
//! its head, so it holds at most `n - 1` commands. The host learns the head
//! from each completion's SQ Head Pointer. A completion queue entry is new
//! when its phase tag equals the phase the host expects; the expected phase
//! starts at 1 and flips each time the head wraps.

/// The host's view of a submission queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmissionRing {
    entries: u16,
    head: u16,
    tail: u16,
}

impl SubmissionRing {
    /// An empty ring of `entries` entries (at least 2).
    pub fn new(entries: u16) -> Self {
        Self {
            entries: entries.max(2),
            head: 0,
            tail: 0,
        }
    }

    /// Entries in the ring.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// The tail: where the next command goes, and the doorbell's value.
    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// Commands the controller has not fetched yet, as far as the host knows.
    pub fn in_use(&self) -> u16 {
        (self.tail + self.entries - self.head) % self.entries
    }

    /// Commands that fit before the ring is full.
    pub fn free(&self) -> u16 {
        self.entries - 1 - self.in_use()
    }

    /// Takes the slot at the tail and advances it; `None` when full.
    pub fn push(&mut self) -> Option<u16> {
        if self.free() == 0 {
            return None;
        }
        let slot = self.tail;
        self.tail = (self.tail + 1) % self.entries;
        Some(slot)
    }

    /// Records the head a completion reported. A head outside the ring, or
    /// one that is not between the current head and the tail, is refused
    /// (false): the controller cannot have fetched commands the host never
    /// submitted.
    pub fn set_head(&mut self, head: u16) -> bool {
        if head >= self.entries {
            return false;
        }
        let advanced = (head + self.entries - self.head) % self.entries;
        if advanced > self.in_use() {
            return false;
        }
        self.head = head;
        true
    }
}

/// The host's view of a completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletionRing {
    entries: u16,
    head: u16,
    phase: bool,
}

impl CompletionRing {
    /// A ring of `entries` entries (at least 2), expecting phase 1.
    pub fn new(entries: u16) -> Self {
        Self {
            entries: entries.max(2),
            head: 0,
            phase: true,
        }
    }

    /// The head: the entry looked at next, and the doorbell's value.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The phase tag a new entry at the head carries.
    pub fn phase(&self) -> bool {
        self.phase
    }

    /// Whether an entry with phase tag `phase` at the head is new.
    pub fn is_new(&self, phase: bool) -> bool {
        phase == self.phase
    }

    /// Consumes the entry at the head; the phase flips on wrapping.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.entries {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_ring_holds_one_less_than_its_size() {
        let mut sq = SubmissionRing::new(4);
        assert_eq!(sq.free(), 3);
        assert_eq!(sq.push(), Some(0));
        assert_eq!(sq.push(), Some(1));
        assert_eq!(sq.push(), Some(2));
        assert_eq!(sq.push(), None);
        assert_eq!(sq.tail(), 3);
        assert_eq!(sq.in_use(), 3);
        // The controller fetched two.
        assert!(sq.set_head(2));
        assert_eq!(sq.free(), 2);
        assert_eq!(sq.push(), Some(3));
        assert_eq!(sq.push(), Some(0));
        assert_eq!(sq.tail(), 1);
        assert_eq!(sq.push(), None);
        // Heads wrap too.
        assert!(sq.set_head(0));
        assert_eq!(sq.in_use(), 1);
        assert!(sq.set_head(1));
        assert_eq!(sq.in_use(), 0);
    }

    #[test]
    fn a_head_the_host_never_submitted_past_is_refused() {
        let mut sq = SubmissionRing::new(8);
        sq.push();
        sq.push();
        assert!(!sq.set_head(3), "past the tail");
        assert!(!sq.set_head(8), "outside the ring");
        assert!(sq.set_head(2));
        assert!(!sq.set_head(1), "backwards");
        assert_eq!(sq.in_use(), 0);
        assert_eq!(SubmissionRing::new(0).entries(), 2);
    }

    #[test]
    fn the_completion_phase_flips_on_each_wrap() {
        let mut cq = CompletionRing::new(3);
        assert!(cq.is_new(true) && !cq.is_new(false));
        for _ in 0..3 {
            cq.advance();
        }
        assert_eq!(cq.head(), 0);
        assert!(cq.is_new(false) && !cq.is_new(true));
        cq.advance();
        assert_eq!((cq.head(), cq.phase()), (1, false));
        for _ in 0..2 {
            cq.advance();
        }
        assert_eq!((cq.head(), cq.phase()), (0, true));
    }
}
