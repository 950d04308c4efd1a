//! Lines on the UEFI console (under OVMF and AAVMF it reaches the serial port).
//!
//! Only usable while boot services are active.

/// Prints a formatted line on the firmware's standard output.
macro_rules! println {
    ($($arg:tt)*) => {{
        uefi::system::with_stdout(|out| {
            use core::fmt::Write as _;
            // Nothing useful can be done if the console itself fails.
            let _ = writeln!(out, $($arg)*);
        });
    }};
}

pub(crate) use println;
