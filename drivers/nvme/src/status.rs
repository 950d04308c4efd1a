//! Completion status (NVMe Base Specification 2.0, 4.6.1): the status code
//! type and code a command finished with, and their names as the
//! specification's tables give them.

use core::fmt;

/// Status code types (figure 93).
pub mod code_type {
    /// Generic Command Status.
    pub const GENERIC: u8 = 0;
    /// Command Specific Status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and Data Integrity Errors.
    pub const MEDIA: u8 = 2;
    /// Path Related Status.
    pub const PATH: u8 = 3;
    /// Vendor Specific.
    pub const VENDOR: u8 = 7;
}

/// A completion's status field without the phase tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Status Code Type (SCT).
    pub code_type: u8,
    /// Status Code (SC).
    pub code: u8,
    /// More status information in the Error Information log page (M).
    pub more: bool,
    /// Do Not Retry (DNR).
    pub do_not_retry: bool,
}

impl Status {
    /// Successful Completion.
    pub const SUCCESS: Self = Self::new(code_type::GENERIC, 0);

    /// A status of type `code_type` and code `code`, M and DNR clear.
    pub const fn new(code_type: u8, code: u8) -> Self {
        Self {
            code_type,
            code,
            more: false,
            do_not_retry: false,
        }
    }

    /// Decodes the 15-bit status field (completion DW3 bits 31:17).
    pub fn from_field(field: u16) -> Self {
        Self {
            code: field as u8,
            code_type: ((field >> 8) & 7) as u8,
            more: field & (1 << 13) != 0,
            do_not_retry: field & (1 << 14) != 0,
        }
    }

    /// The 15-bit status field (the fake controller's side).
    pub fn field(&self) -> u16 {
        u16::from(self.code)
            | u16::from(self.code_type & 7) << 8
            | u16::from(self.more) << 13
            | u16::from(self.do_not_retry) << 14
    }

    /// Whether the command succeeded.
    pub fn is_success(&self) -> bool {
        self.code_type == code_type::GENERIC && self.code == 0
    }

    /// The specification's name for the status.
    pub fn name(&self) -> &'static str {
        match self.code_type {
            code_type::GENERIC => generic_name(self.code),
            code_type::COMMAND_SPECIFIC => command_specific_name(self.code),
            code_type::MEDIA => media_name(self.code),
            code_type::PATH => path_name(self.code),
            code_type::VENDOR => "Vendor Specific Status",
            _ => "Reserved Status Code Type",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (SCT {:#x} SC {:#04x}{})",
            self.name(),
            self.code_type,
            self.code,
            if self.do_not_retry { ", DNR" } else { "" }
        )
    }
}

/// Generic Command Status values (figure 94) and the NVM command set's
/// (NVM Command Set Specification 1.0, figure 17).
fn generic_name(code: u8) -> &'static str {
    match code {
        0x00 => "Successful Completion",
        0x01 => "Invalid Command Opcode",
        0x02 => "Invalid Field in Command",
        0x03 => "Command ID Conflict",
        0x04 => "Data Transfer Error",
        0x05 => "Commands Aborted due to Power Loss Notification",
        0x06 => "Internal Error",
        0x07 => "Command Abort Requested",
        0x08 => "Command Aborted due to SQ Deletion",
        0x09 => "Command Aborted due to Failed Fused Command",
        0x0a => "Command Aborted due to Missing Fused Command",
        0x0b => "Invalid Namespace or Format",
        0x0c => "Command Sequence Error",
        0x0d => "Invalid SGL Segment Descriptor",
        0x0e => "Invalid Number of SGL Descriptors",
        0x0f => "Data SGL Length Invalid",
        0x10 => "Metadata SGL Length Invalid",
        0x11 => "SGL Descriptor Type Invalid",
        0x12 => "Invalid Use of Controller Memory Buffer",
        0x13 => "PRP Offset Invalid",
        0x14 => "Atomic Write Unit Exceeded",
        0x15 => "Operation Denied",
        0x16 => "SGL Offset Invalid",
        0x18 => "Host Identifier Inconsistent Format",
        0x19 => "Keep Alive Timer Expired",
        0x1a => "Keep Alive Timeout Invalid",
        0x1b => "Command Aborted due to Preempt and Abort",
        0x1c => "Sanitize Failed",
        0x1d => "Sanitize In Progress",
        0x1e => "SGL Data Block Granularity Invalid",
        0x1f => "Command Not Supported for Queue in CMB",
        0x20 => "Namespace is Write Protected",
        0x21 => "Command Interrupted",
        0x22 => "Transient Transport Error",
        0x80 => "LBA Out of Range",
        0x81 => "Capacity Exceeded",
        0x82 => "Namespace Not Ready",
        0x83 => "Reservation Conflict",
        0x84 => "Format In Progress",
        _ => "Unknown Generic Command Status",
    }
}

/// Command Specific Status values (figure 95, and the NVM command set's
/// figure 18).
fn command_specific_name(code: u8) -> &'static str {
    match code {
        0x00 => "Completion Queue Invalid",
        0x01 => "Invalid Queue Identifier",
        0x02 => "Invalid Queue Size",
        0x03 => "Abort Command Limit Exceeded",
        0x05 => "Asynchronous Event Request Limit Exceeded",
        0x06 => "Invalid Firmware Slot",
        0x07 => "Invalid Firmware Image",
        0x08 => "Invalid Interrupt Vector",
        0x09 => "Invalid Log Page",
        0x0a => "Invalid Format",
        0x0b => "Firmware Activation Requires Conventional Reset",
        0x0c => "Invalid Queue Deletion",
        0x0d => "Feature Identifier Not Saveable",
        0x0e => "Feature Not Changeable",
        0x0f => "Feature Not Namespace Specific",
        0x10 => "Firmware Activation Requires NVM Subsystem Reset",
        0x11 => "Firmware Activation Requires Controller Level Reset",
        0x12 => "Firmware Activation Requires Maximum Time Violation",
        0x13 => "Firmware Activation Prohibited",
        0x14 => "Overlapping Range",
        0x15 => "Namespace Insufficient Capacity",
        0x16 => "Namespace Identifier Unavailable",
        0x18 => "Namespace Already Attached",
        0x19 => "Namespace Is Private",
        0x1a => "Namespace Not Attached",
        0x1b => "Thin Provisioning Not Supported",
        0x1c => "Controller List Invalid",
        0x80 => "Conflicting Attributes",
        0x81 => "Invalid Protection Information",
        0x82 => "Attempted Write to Read Only Range",
        0x83 => "Command Size Limit Exceeded",
        _ => "Unknown Command Specific Status",
    }
}

/// Media and Data Integrity Errors (figure 96, NVM command set figure 19).
fn media_name(code: u8) -> &'static str {
    match code {
        0x80 => "Write Fault",
        0x81 => "Unrecovered Read Error",
        0x82 => "End-to-end Guard Check Error",
        0x83 => "End-to-end Application Tag Check Error",
        0x84 => "End-to-end Reference Tag Check Error",
        0x85 => "Compare Failure",
        0x86 => "Access Denied",
        0x87 => "Deallocated or Unwritten Logical Block",
        _ => "Unknown Media and Data Integrity Error",
    }
}

/// Path Related Status (figure 97).
fn path_name(code: u8) -> &'static str {
    match code {
        0x00 => "Internal Path Error",
        0x01 => "Asymmetric Access Persistent Loss",
        0x02 => "Asymmetric Access Inaccessible",
        0x03 => "Asymmetric Access Transition",
        0x60 => "Controller Pathing Error",
        0x70 => "Host Pathing Error",
        0x71 => "Command Aborted By Host",
        _ => "Unknown Path Related Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn statuses_are_named_as_the_specification_names_them() {
        assert!(Status::SUCCESS.is_success());
        assert_eq!(Status::SUCCESS.name(), "Successful Completion");
        assert_eq!(Status::new(0, 0x80).name(), "LBA Out of Range");
        assert_eq!(Status::new(0, 0x02).name(), "Invalid Field in Command");
        assert_eq!(Status::new(1, 0x01).name(), "Invalid Queue Identifier");
        assert_eq!(Status::new(2, 0x81).name(), "Unrecovered Read Error");
        assert_eq!(Status::new(3, 0x71).name(), "Command Aborted By Host");
        assert_eq!(Status::new(7, 0x12).name(), "Vendor Specific Status");
        assert_eq!(Status::new(5, 0).name(), "Reserved Status Code Type");
        assert_eq!(
            Status::new(0, 0x7f).name(),
            "Unknown Generic Command Status"
        );
        assert!(!Status::new(1, 0).is_success());
    }

    #[test]
    fn the_field_decodes_type_code_more_and_dnr() {
        let s = Status::from_field(1 << 14 | 1 << 13 | 2 << 8 | 0x81);
        assert_eq!(
            (s.code_type, s.code, s.more, s.do_not_retry),
            (2, 0x81, true, true)
        );
        assert_eq!(Status::from_field(s.field()), s);
        assert_eq!(
            s.to_string(),
            "Unrecovered Read Error (SCT 0x2 SC 0x81, DNR)"
        );
        // The CRD bits (12:11) are ignored.
        assert_eq!(Status::from_field(3 << 11), Status::SUCCESS);
    }
}
