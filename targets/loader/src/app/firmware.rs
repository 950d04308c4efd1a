//! What the firmware tells us: configuration tables, the framebuffer, the clock and
//! the partition the loader was started from.

use stratus_loader::date::{CalendarTime, unix_timestamp};
use stratus_loader::responses::Framebuffer;
use uefi::boot::{self, OpenProtocolAttributes, OpenProtocolParams};
use uefi::proto::console::gop::{GraphicsOutput, PixelFormat};
use uefi::proto::device_path::media::PartitionSignature;
use uefi::proto::device_path::{DevicePath, DevicePathNodeEnum};
use uefi::proto::loaded_image::LoadedImage;
use uefi::table::cfg::ConfigTableEntry;
use uefi::{Guid, guid, runtime, system};

/// `EFI_DTB_TABLE_GUID` (UEFI 2.10, 4.6.1.3 "Devicetree Tables").
const DTB_GUID: Guid = guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");

/// Physical addresses and facts gathered before the handoff.
#[derive(Default)]
pub struct FirmwareInfo {
    /// RSDP, from the ACPI 2.0 table if present, else ACPI 1.0.
    pub rsdp: Option<u64>,
    /// SMBIOS 32-bit entry point.
    pub smbios32: Option<u64>,
    /// SMBIOS 3 (64-bit) entry point.
    pub smbios64: Option<u64>,
    /// Device tree blob.
    pub dtb: Option<u64>,
    /// The EFI system table.
    pub system_table: u64,
    /// The GOP framebuffer in its current mode.
    pub framebuffer: Option<Framebuffer>,
    /// UNIX time from the RTC.
    pub boot_time: Option<i64>,
    /// 1-based partition index of the loader's volume, 0 if unknown.
    pub partition_index: u32,
    /// GPT partition GUID of the loader's volume (EFI byte order), zero if unknown.
    pub partition_guid: [u8; 16],
    /// MBR disk signature, 0 if unknown or GPT.
    pub mbr_disk_id: u32,
}

/// Collects everything; missing pieces stay `None` / zero.
pub fn collect() -> FirmwareInfo {
    let mut info = FirmwareInfo {
        system_table: system_table_address(),
        framebuffer: framebuffer(),
        boot_time: boot_time(),
        ..FirmwareInfo::default()
    };
    system::with_config_table(|entries| {
        let find = |guid: Guid| {
            entries
                .iter()
                .find(|e| e.guid == guid)
                .map(|e| e.address as u64)
                .filter(|&a| a != 0)
        };
        info.rsdp =
            find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID));
        info.smbios32 = find(ConfigTableEntry::SMBIOS_GUID);
        info.smbios64 = find(ConfigTableEntry::SMBIOS3_GUID);
        info.dtb = find(DTB_GUID);
    });
    boot_partition(&mut info);
    info
}

fn system_table_address() -> u64 {
    uefi::table::system_table_raw().map_or(0, |p| p.as_ptr() as u64)
}

fn boot_time() -> Option<i64> {
    let t = runtime::get_time().ok()?;
    unix_timestamp(CalendarTime {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
    })
}

fn framebuffer() -> Option<Framebuffer> {
    let handle = boot::get_handle_for_protocol::<GraphicsOutput>().ok()?;
    // SAFETY: GET_PROTOCOL does not take the protocol from the console driver that
    // uses it; the handle stays valid while boot services run and the reference
    // is dropped before they end.
    let mut gop = unsafe {
        boot::open_protocol::<GraphicsOutput>(
            OpenProtocolParams {
                handle,
                agent: boot::image_handle(),
                controller: None,
            },
            OpenProtocolAttributes::GetProtocol,
        )
    }
    .ok()?;
    let mode = gop.current_mode_info();
    let (red, green, blue) = match mode.pixel_format() {
        PixelFormat::Rgb => ((8, 0), (8, 8), (8, 16)),
        PixelFormat::Bgr => ((8, 16), (8, 8), (8, 0)),
        PixelFormat::Bitmask => {
            let m = mode.pixel_bitmask()?;
            (
                Framebuffer::mask_to_size_shift(m.red),
                Framebuffer::mask_to_size_shift(m.green),
                Framebuffer::mask_to_size_shift(m.blue),
            )
        }
        PixelFormat::BltOnly => return None,
    };
    let (width, height) = mode.resolution();
    let phys = gop.frame_buffer().as_mut_ptr() as u64;
    Some(Framebuffer {
        phys,
        width: width as u64,
        height: height as u64,
        pitch: mode.stride() as u64 * 4,
        bpp: 32,
        red,
        green,
        blue,
    })
}

fn boot_partition(info: &mut FirmwareInfo) {
    let Ok(image) = boot::open_protocol_exclusive::<LoadedImage>(boot::image_handle()) else {
        return;
    };
    let Some(device) = image.device() else {
        return;
    };
    let Ok(path) = boot::open_protocol_exclusive::<DevicePath>(device) else {
        return;
    };
    for node in path.node_iter() {
        if let Ok(DevicePathNodeEnum::MediaHardDrive(hd)) = node.as_enum() {
            info.partition_index = hd.partition_number();
            match hd.partition_signature() {
                PartitionSignature::Guid(g) => info.partition_guid = g.to_bytes(),
                PartitionSignature::Mbr(id) => info.mbr_disk_id = u32::from_le_bytes(id),
                _ => {}
            }
        }
    }
}
