//! GIC ITS commands as the ITS reads them from its command queue: four
//! little-endian doublewords each (ARM IHI 0069, 5.3 "ITS commands"). The
//! command number is DW0 bits 7:0; fields are placed exactly as the
//! architecture's tables lay them out. Pure, so the encoding is tested on
//! the host against the specification.

/// One command queue entry: 32 bytes.
pub const COMMAND_BYTES: u64 = 32;

/// Where a collection's interrupts go: a redistributor, named as
/// `GITS_TYPER.PTA` asks (5.3.3 "MAPC").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedistributorTarget {
    /// `PTA == 1`: the physical address of the redistributor's RD_base
    /// frame (64 KiB aligned).
    Physical(u64),
    /// `PTA == 0`: the processor number from its `GICR_TYPER`.
    ProcessorNumber(u16),
}

impl RedistributorTarget {
    /// The RDbase field value (bits 51:16 of DW2).
    fn rdbase_field(self) -> u64 {
        match self {
            Self::Physical(phys) => phys & RDBASE_MASK,
            Self::ProcessorNumber(n) => u64::from(n) << 16,
        }
    }
}

/// Bits 51:16 of DW2 (RDbase in MAPC, SYNC).
const RDBASE_MASK: u64 = 0x000f_ffff_ffff_0000;
/// Bits 51:8 of DW2 (ITT_addr in MAPD).
const ITT_ADDR_MASK: u64 = 0x000f_ffff_ffff_ff00;
/// DW2 bit 63: the mapping is valid.
const VALID: u64 = 1 << 63;

/// The ITS commands Stratus issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItsCommand {
    /// MAPD (0x08): maps `device` to its interrupt translation table at
    /// `itt_phys` (256-byte aligned) with `event_id_bits` bits of event id,
    /// or unmaps it when `itt_phys` is `None`.
    Mapd {
        /// Device id.
        device: u32,
        /// The ITT's physical address; `None` unmaps.
        itt_phys: Option<u64>,
        /// Number of event id bits (1..=32); the Size field holds one less.
        event_id_bits: u8,
    },
    /// MAPC (0x09): maps collection `icid` to a redistributor.
    Mapc {
        /// Collection id.
        icid: u16,
        /// The redistributor.
        target: RedistributorTarget,
    },
    /// MAPTI (0x0A): event `event` of `device` raises LPI `lpi` through
    /// collection `icid`.
    Mapti {
        /// Device id.
        device: u32,
        /// Event id (the data the device writes).
        event: u32,
        /// Physical LPI INTID (8192 and up).
        lpi: u32,
        /// Collection id.
        icid: u16,
    },
    /// INV (0x0C): reload the configuration of the LPI `device`/`event`
    /// maps to.
    Inv {
        /// Device id.
        device: u32,
        /// Event id.
        event: u32,
    },
    /// DISCARD (0x0F): remove the mapping of `device`/`event` and clear a
    /// pending LPI.
    Discard {
        /// Device id.
        device: u32,
        /// Event id.
        event: u32,
    },
    /// SYNC (0x05): the effects of earlier commands on `target` are
    /// visible when the ITS moves past this one.
    Sync {
        /// The redistributor.
        target: RedistributorTarget,
    },
}

impl ItsCommand {
    /// The command number (DW0 bits 7:0).
    pub fn number(&self) -> u8 {
        match self {
            Self::Sync { .. } => 0x05,
            Self::Mapd { .. } => 0x08,
            Self::Mapc { .. } => 0x09,
            Self::Mapti { .. } => 0x0a,
            Self::Inv { .. } => 0x0c,
            Self::Discard { .. } => 0x0f,
        }
    }

    /// The four doublewords of the command.
    pub fn encode(&self) -> [u64; 4] {
        let number = u64::from(self.number());
        let with_device = |device: u32| number | (u64::from(device) << 32);
        match *self {
            Self::Mapd {
                device,
                itt_phys,
                event_id_bits,
            } => [
                with_device(device),
                u64::from(event_id_bits.clamp(1, 32) - 1) & 0x1f,
                itt_phys.map_or(0, |phys| VALID | (phys & ITT_ADDR_MASK)),
                0,
            ],
            Self::Mapc { icid, target } => [
                number,
                0,
                VALID | target.rdbase_field() | u64::from(icid),
                0,
            ],
            Self::Mapti {
                device,
                event,
                lpi,
                icid,
            } => [
                with_device(device),
                u64::from(event) | (u64::from(lpi) << 32),
                u64::from(icid),
                0,
            ],
            Self::Inv { device, event } | Self::Discard { device, event } => {
                [with_device(device), u64::from(event), 0, 0]
            }
            Self::Sync { target } => [number, 0, target.rdbase_field(), 0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field of `value`: bits `hi..=lo`.
    fn bits(value: u64, hi: u32, lo: u32) -> u64 {
        (value >> lo) & ((1u64 << (hi - lo + 1)) - 1)
    }

    #[test]
    fn mapd_places_device_size_itt_and_valid() {
        let [dw0, dw1, dw2, dw3] = ItsCommand::Mapd {
            device: 0x1_0008,
            itt_phys: Some(0x4_5678_9a00),
            event_id_bits: 6,
        }
        .encode();
        assert_eq!(bits(dw0, 7, 0), 0x08);
        assert_eq!(bits(dw0, 63, 32), 0x1_0008);
        assert_eq!(bits(dw1, 4, 0), 5, "Size is event id bits minus one");
        assert_eq!(bits(dw2, 63, 63), 1);
        assert_eq!(bits(dw2, 51, 8) << 8, 0x4_5678_9a00);
        assert_eq!(dw3, 0);
        // Unmapping: V clear, no address.
        let unmap = ItsCommand::Mapd {
            device: 3,
            itt_phys: None,
            event_id_bits: 6,
        }
        .encode();
        assert_eq!(bits(unmap[2], 63, 63), 0);
        assert_eq!(bits(unmap[2], 51, 8), 0);
    }

    #[test]
    fn mapc_names_the_redistributor_as_pta_asks() {
        let by_number = ItsCommand::Mapc {
            icid: 3,
            target: RedistributorTarget::ProcessorNumber(3),
        }
        .encode();
        assert_eq!(bits(by_number[0], 7, 0), 0x09);
        assert_eq!(bits(by_number[2], 63, 63), 1);
        assert_eq!(bits(by_number[2], 15, 0), 3);
        assert_eq!(bits(by_number[2], 51, 16), 3);
        let by_address = ItsCommand::Mapc {
            icid: 0x1ff,
            target: RedistributorTarget::Physical(0x1020_0000),
        }
        .encode();
        assert_eq!(bits(by_address[2], 15, 0), 0x1ff);
        assert_eq!(bits(by_address[2], 51, 16) << 16, 0x1020_0000);
        assert_eq!(by_address[1] | by_address[3], 0);
    }

    #[test]
    fn mapti_inv_discard_and_sync() {
        let mapti = ItsCommand::Mapti {
            device: 7,
            event: 63,
            lpi: 8200,
            icid: 2,
        }
        .encode();
        assert_eq!(bits(mapti[0], 7, 0), 0x0a);
        assert_eq!(bits(mapti[0], 63, 32), 7);
        assert_eq!(bits(mapti[1], 31, 0), 63);
        assert_eq!(bits(mapti[1], 63, 32), 8200);
        assert_eq!(bits(mapti[2], 15, 0), 2);
        assert_eq!(mapti[3], 0);

        let inv = ItsCommand::Inv {
            device: 7,
            event: 5,
        }
        .encode();
        assert_eq!(inv, [0x0c | (7 << 32), 5, 0, 0]);
        let discard = ItsCommand::Discard {
            device: 7,
            event: 5,
        }
        .encode();
        assert_eq!(discard, [0x0f | (7 << 32), 5, 0, 0]);

        let sync = ItsCommand::Sync {
            target: RedistributorTarget::ProcessorNumber(1),
        }
        .encode();
        assert_eq!(sync, [0x05, 0, 1 << 16, 0]);
        let sync = ItsCommand::Sync {
            target: RedistributorTarget::Physical(0x080a_0000),
        }
        .encode();
        assert_eq!(bits(sync[2], 51, 16) << 16, 0x080a_0000);
    }
}
