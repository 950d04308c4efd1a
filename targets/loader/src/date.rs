//! UEFI calendar time to a UNIX timestamp (Date at Boot feature).
//!
//! Like Limine, the time zone field is ignored: the RTC is taken to hold UTC.

/// A calendar date and time as `EFI_TIME` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalendarTime {
    /// Year, e.g. 2025.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 59.
    pub second: u8,
}

/// Seconds since 1970-01-01T00:00:00Z (negative before), or `None` if a field is
/// out of range.
#[must_use]
pub fn unix_timestamp(t: CalendarTime) -> Option<i64> {
    if !(1..=12).contains(&t.month)
        || !(1..=31).contains(&t.day)
        || t.hour > 23
        || t.minute > 59
        || t.second > 59
    {
        return None;
    }
    // Days from civil (proleptic Gregorian), with March as the first month.
    let y = i64::from(t.year) - i64::from(t.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(t.month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(t.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> CalendarTime {
        CalendarTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(unix_timestamp(t(1970, 1, 1, 0, 0, 0)), Some(0));
        assert_eq!(unix_timestamp(t(2000, 3, 1, 0, 0, 0)), Some(951_868_800));
        assert_eq!(
            unix_timestamp(t(2024, 2, 29, 12, 34, 56)),
            Some(1_709_210_096)
        );
        assert_eq!(unix_timestamp(t(1969, 12, 31, 23, 59, 59)), Some(-1));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(unix_timestamp(t(2024, 0, 1, 0, 0, 0)), None);
        assert_eq!(unix_timestamp(t(2024, 13, 1, 0, 0, 0)), None);
        assert_eq!(unix_timestamp(t(2024, 1, 0, 0, 0, 0)), None);
        assert_eq!(unix_timestamp(t(2024, 1, 1, 24, 0, 0)), None);
    }
}
