//! Finding one CPU's GICv3 redistributor in a region of redistributor
//! frames (ARM IHI 0069, 12.10): each redistributor is two 64 KiB frames
//! (RD_base, SGI_base), four when `GICR_TYPER.VLPIS` says GICv4 virtual LPI
//! frames follow; `GICR_TYPER` bits 63:32 hold the affinity
//! (Aff3.Aff2.Aff1.Aff0) of the CPU it serves, bit 4 (`Last`) marks the last
//! one of the region. Frames are in no particular CPU order. Pure: the
//! register reads are a closure, so the walk is tested on the host.

/// One GICv3 redistributor (RD_base + SGI_base).
pub const GICR_V3_STRIDE: u64 = 0x20000;
/// One GICv4 redistributor (plus VLPI_base and a reserved frame).
pub const GICR_V4_STRIDE: u64 = 0x40000;
const TYPER_VLPIS: u64 = 1 << 1;
const TYPER_LAST: u64 = 1 << 4;

/// The offset in a region of `len` bytes of the redistributor serving
/// `affinity`, given `typer_at(offset)` reading a frame's `GICR_TYPER`.
/// Stops at the `Last` frame or the region's end, whichever comes first.
pub fn find(len: u64, affinity: u32, typer_at: impl Fn(u64) -> u64) -> Option<u64> {
    frames(len, typer_at)
        .find(|&(_, typer)| (typer >> 32) as u32 == affinity)
        .map(|(offset, _)| offset)
}

/// Every redistributor of a region of `len` bytes as (offset, `GICR_TYPER`),
/// in region order, up to the `Last` frame or the region's end.
pub fn frames(len: u64, typer_at: impl Fn(u64) -> u64) -> impl Iterator<Item = (u64, u64)> {
    let mut next = Some(0u64);
    core::iter::from_fn(move || {
        let offset = next?;
        if offset.checked_add(GICR_V3_STRIDE)? > len {
            next = None;
            return None;
        }
        let typer = typer_at(offset);
        next = if typer & TYPER_LAST != 0 {
            None
        } else {
            offset.checked_add(if typer & TYPER_VLPIS != 0 {
                GICR_V4_STRIDE
            } else {
                GICR_V3_STRIDE
            })
        };
        Some((offset, typer))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typer(affinity: u32, flags: u64) -> u64 {
        (u64::from(affinity) << 32) | flags
    }

    #[test]
    fn finds_a_cpu_out_of_order_in_a_gicv3_range() {
        // QEMU virt / Graviton VMs: one range, frames 128 KiB apart.
        let frames = [typer(0x100, 0), typer(0, 0), typer(0x101, TYPER_LAST)];
        let read = |o: u64| frames[(o / GICR_V3_STRIDE) as usize];
        assert_eq!(find(3 * GICR_V3_STRIDE, 0, read), Some(GICR_V3_STRIDE));
        assert_eq!(
            find(3 * GICR_V3_STRIDE, 0x101, read),
            Some(2 * GICR_V3_STRIDE)
        );
        assert_eq!(find(3 * GICR_V3_STRIDE, 0x200, read), None);
    }

    #[test]
    fn gicv4_frames_are_twice_as_far_apart() {
        let frames = [typer(7, TYPER_VLPIS), typer(9, TYPER_VLPIS | TYPER_LAST)];
        let read = |o: u64| frames[(o / GICR_V4_STRIDE) as usize];
        assert_eq!(find(2 * GICR_V4_STRIDE, 9, read), Some(GICR_V4_STRIDE));
    }

    #[test]
    fn a_per_cpu_frame_or_a_range_without_last_ends_at_its_length() {
        // A GICC entry's redistributor: one frame, whoever it serves.
        assert_eq!(find(GICR_V3_STRIDE, 3, |_| typer(3, 0)), Some(0));
        assert_eq!(find(GICR_V3_STRIDE, 4, |_| typer(3, 0)), None);
        // Firmware that never sets Last: the walk stays inside the region.
        let reads = core::cell::Cell::new(0);
        let read = |_| {
            reads.set(reads.get() + 1);
            typer(1, 0)
        };
        assert_eq!(find(4 * GICR_V3_STRIDE + 5, 2, read), None);
        assert_eq!(reads.get(), 4);
        assert_eq!(find(u64::MAX, 2, |_| typer(1, TYPER_LAST)), None);
    }

    #[test]
    fn every_frame_of_a_range_in_order() {
        let frames_at = [
            typer(0x100, 0),
            typer(0, TYPER_VLPIS),
            typer(0x101, TYPER_LAST),
        ];
        let read = |o: u64| match o {
            0 => frames_at[0],
            GICR_V3_STRIDE => frames_at[1],
            o if o == GICR_V3_STRIDE + GICR_V4_STRIDE => frames_at[2],
            _ => panic!("read outside the frames at {o:#x}"),
        };
        let all: std::vec::Vec<_> = frames(u64::MAX, read).collect();
        assert_eq!(
            all,
            [
                (0, frames_at[0]),
                (GICR_V3_STRIDE, frames_at[1]),
                (GICR_V3_STRIDE + GICR_V4_STRIDE, frames_at[2])
            ]
        );
        assert_eq!(frames(GICR_V3_STRIDE - 1, read).count(), 0);
    }
}
