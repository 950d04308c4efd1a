//! The GIC ITS command queue (ARM IHI 0069, 5.2 and 12.19.2-12.19.4): a
//! ring of 32-byte commands in memory. Software writes commands at
//! `GITS_CWRITER`, the ITS executes them and advances `GITS_CREADR`; the
//! ring is full when the slot after the write offset is the read offset.
//! `GITS_CREADR.Stalled` (bit 0) says the ITS stopped on a command it
//! refused. Every wait here is bounded by the caller's `expired` check.
//! Pure: the registers are a trait, so the ring and its errors are tested on
//! the host.

use crate::its_command::{COMMAND_BYTES, ItsCommand};

/// Offset bits (19:5) of `GITS_CREADR` and `GITS_CWRITER`.
const OFFSET_MASK: u64 = 0x000f_ffe0;
/// `GITS_CREADR.Stalled`.
const STALLED: u64 = 1;

/// The ITS side of the queue.
pub trait QueueRegisters {
    /// Reads `GITS_CREADR`.
    fn read_creadr(&mut self) -> u64;
    /// Writes `GITS_CWRITER`, after making the commands written so far
    /// visible to the ITS.
    fn write_cwriter(&mut self, value: u64);
    /// Called after each command is written to its slot (to clean it from
    /// the data cache when the ITS does not snoop).
    fn wrote(&mut self, slot: &[u64; 4]);
}

/// Why commands did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The ITS stopped on the command at this byte offset.
    Stalled {
        /// Offset of the refused command in the queue.
        offset: u64,
    },
    /// The ITS did not catch up in time.
    Timeout {
        /// `GITS_CREADR`'s offset when the wait gave up.
        read: u64,
        /// The offset it was waited for.
        write: u64,
    },
}

/// The ring of command slots and the next one to write.
pub struct CommandQueue<'a> {
    slots: &'a mut [[u64; 4]],
    write: usize,
}

impl<'a> CommandQueue<'a> {
    /// A queue over `slots` (zeroed, as the ITS was told), empty: both
    /// offsets at 0 after `GITS_CBASER` was written.
    pub fn new(slots: &'a mut [[u64; 4]]) -> Self {
        Self { slots, write: 0 }
    }

    fn offset(slot: usize) -> u64 {
        slot as u64 * COMMAND_BYTES
    }

    /// The ITS's read slot; the stall as an error.
    fn read_slot(regs: &mut impl QueueRegisters) -> Result<usize, QueueError> {
        let creadr = regs.read_creadr();
        let offset = creadr & OFFSET_MASK;
        if creadr & STALLED != 0 {
            return Err(QueueError::Stalled { offset });
        }
        Ok((offset / COMMAND_BYTES) as usize)
    }

    /// Waits until `done(read slot)`, or the stall or `expired` ends it.
    fn wait(
        &self,
        regs: &mut impl QueueRegisters,
        expired: &mut impl FnMut() -> bool,
        done: impl Fn(usize) -> bool,
    ) -> Result<(), QueueError> {
        loop {
            let read = Self::read_slot(regs)?;
            if done(read) {
                return Ok(());
            }
            if expired() {
                return Err(QueueError::Timeout {
                    read: Self::offset(read),
                    write: Self::offset(self.write),
                });
            }
            core::hint::spin_loop();
        }
    }

    /// Writes `commands`, hands them to the ITS and waits until it has
    /// executed them all. When the ring fills up on the way, the commands
    /// written so far are handed over first and the wait is for room.
    pub fn submit(
        &mut self,
        commands: &[ItsCommand],
        regs: &mut impl QueueRegisters,
        mut expired: impl FnMut() -> bool,
    ) -> Result<(), QueueError> {
        let len = self.slots.len();
        for command in commands {
            let next = (self.write + 1) % len;
            if Self::read_slot(regs)? == next {
                regs.write_cwriter(Self::offset(self.write));
                self.wait(regs, &mut expired, |read| read != next)?;
            }
            self.slots[self.write] = command.encode();
            regs.wrote(&self.slots[self.write]);
            self.write = next;
        }
        regs.write_cwriter(Self::offset(self.write));
        let write = self.write;
        self.wait(regs, &mut expired, |read| read == write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::its_command::RedistributorTarget;
    use std::vec::Vec;

    /// An ITS that executes up to `per_read` commands each time CREADR is
    /// read, stalling on the command number `refuse`. It sees the slots
    /// the queue writes through `wrote`, in the order written (as the
    /// hardware reads them from memory).
    struct FakeIts {
        ring: Vec<[u64; 4]>,
        fill: usize,
        read: usize,
        cwriter: usize,
        per_read: usize,
        refuse: Option<u8>,
        stalled: bool,
        executed: Vec<[u64; 4]>,
    }

    impl FakeIts {
        fn new(len: usize, per_read: usize) -> Self {
            Self {
                ring: std::vec![[0; 4]; len],
                fill: 0,
                read: 0,
                cwriter: 0,
                per_read,
                refuse: None,
                stalled: false,
                executed: Vec::new(),
            }
        }
    }

    impl QueueRegisters for FakeIts {
        fn read_creadr(&mut self) -> u64 {
            for _ in 0..self.per_read {
                if self.stalled || self.read == self.cwriter {
                    break;
                }
                let command = self.ring[self.read];
                if Some(command[0] as u8) == self.refuse {
                    self.stalled = true;
                    break;
                }
                self.executed.push(command);
                self.read = (self.read + 1) % self.ring.len();
            }
            (self.read as u64 * 32) | u64::from(self.stalled)
        }
        fn write_cwriter(&mut self, value: u64) {
            self.cwriter = (value / 32) as usize;
        }
        fn wrote(&mut self, slot: &[u64; 4]) {
            self.ring[self.fill] = *slot;
            self.fill = (self.fill + 1) % self.ring.len();
        }
    }

    fn inv(event: u32) -> ItsCommand {
        ItsCommand::Inv { device: 1, event }
    }

    #[test]
    fn commands_wrap_around_a_small_ring() {
        let mut slots = [[0u64; 4]; 4];
        let mut its = FakeIts::new(4, 1);
        let mut queue = CommandQueue::new(&mut slots);
        // Three slots usable at a time: the second batch fills the ring on
        // the way and the third wraps again.
        let batches: [&[ItsCommand]; 3] = [
            &[inv(0), inv(1), inv(2)],
            &[inv(3), inv(4), inv(5), inv(6)],
            &[inv(7), inv(8)],
        ];
        for batch in batches {
            let mut polls = 0;
            let result = queue.submit(batch, &mut its, || {
                polls += 1;
                polls > 100
            });
            assert_eq!(result, Ok(()));
        }
        let events: Vec<u64> = its.executed.iter().map(|c| c[1]).collect();
        assert_eq!(events, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(queue.write, 9 % 4);
        assert_eq!(queue.slots[0], inv(8).encode());
    }

    #[test]
    fn a_stall_is_named_with_its_offset() {
        let mut slots = [[0u64; 4]; 8];
        let mut its = FakeIts::new(8, 8);
        its.refuse = Some(0x0f);
        let mut queue = CommandQueue::new(&mut slots);
        let sync = ItsCommand::Sync {
            target: RedistributorTarget::ProcessorNumber(0),
        };
        let discard = ItsCommand::Discard {
            device: 1,
            event: 2,
        };
        let result = queue.submit(&[sync, sync, discard, sync], &mut its, || false);
        assert_eq!(result, Err(QueueError::Stalled { offset: 64 }));
        assert_eq!(its.executed.len(), 2);
    }

    #[test]
    fn a_silent_its_times_out() {
        let mut slots = [[0u64; 4]; 8];
        let mut its = FakeIts::new(8, 0);
        let mut queue = CommandQueue::new(&mut slots);
        let mut polls = 0;
        let result = queue.submit(&[inv(1), inv(2)], &mut its, || {
            polls += 1;
            polls >= 50
        });
        assert_eq!(result, Err(QueueError::Timeout { read: 0, write: 64 }));
        assert_eq!(polls, 50);
        // A full ring and a silent ITS: what was written is handed over,
        // then the wait for room gives up.
        let mut slots = [[0u64; 4]; 2];
        let mut its = FakeIts::new(2, 0);
        let mut queue = CommandQueue::new(&mut slots);
        let result = queue.submit(&[inv(1), inv(2)], &mut its, || true);
        assert_eq!(result, Err(QueueError::Timeout { read: 0, write: 32 }));
        assert_eq!(its.cwriter, 1);
    }
}
