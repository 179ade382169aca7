//! The 64-bit HLC timestamp and its text form.

use std::fmt;
use std::str::FromStr;

/// Width of the logical counter; the physical milliseconds take the rest.
const LOGICAL_BITS: u32 = 16;

const MS_PER_DAY: u64 = 86_400_000;

/// Years past this cannot be in range and would overflow the calendar maths.
const MAX_PARSED_YEAR: u64 = 99_999;

/// 64-bit HLC timestamp: upper 48 bits physical milliseconds since Unix epoch, lower 16 bits logical counter.
///
/// Ordering the raw `u64` is the HLC order, and big-endian bytes sort the same
/// way, so stored keys order correctly without decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The smallest timestamp; a fresh [`Hlc`](crate::Hlc) never issues it, so it can mean "none".
    pub const ZERO: Self = Self(0);
    /// The largest timestamp (physical `MAX_PHYSICAL_MS`, logical `u16::MAX`).
    pub const MAX: Self = Self(u64::MAX);
    /// The largest physical component: `2^48 - 1` ms, in the year 10889.
    pub const MAX_PHYSICAL_MS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

    /// Builds a timestamp; `physical_ms` above [`Self::MAX_PHYSICAL_MS`] panics in debug builds and saturates in release.
    ///
    /// Saturating rather than masking keeps an out-of-range input ordered
    /// after every valid one instead of wrapping to a time near the epoch.
    #[must_use]
    pub const fn new(physical_ms: u64, logical: u16) -> Self {
        debug_assert!(
            physical_ms <= Self::MAX_PHYSICAL_MS,
            "HLC physical time does not fit in 48 bits"
        );
        let physical = if physical_ms > Self::MAX_PHYSICAL_MS {
            Self::MAX_PHYSICAL_MS
        } else {
            physical_ms
        };
        Self((physical << LOGICAL_BITS) | logical as u64)
    }

    /// Reinterprets a raw value produced by [`Self::as_u64`]; every `u64` is valid.
    #[must_use]
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value, ordered exactly like the timestamp.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Physical component: milliseconds since the Unix epoch.
    #[must_use]
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Logical component: orders events within one physical millisecond.
    #[must_use]
    pub const fn logical(self) -> u16 {
        // Truncation is the point: the low 16 bits are the counter.
        self.0 as u16
    }

    /// Big-endian encoding, which sorts bytewise in timestamp order.
    #[must_use]
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Decodes [`Self::to_be_bytes`].
    #[must_use]
    pub fn from_be_bytes(b: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(b))
    }

    /// The next timestamp up; a full logical counter rolls into the next
    /// millisecond, which is the raw value plus one given the bit layout.
    pub(crate) const fn checked_successor(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(raw) => Some(Self(raw)),
            None => None,
        }
    }
}

/// Formats as `2026-11-23T13:27:52.123Z+3`: RFC 3339 UTC with milliseconds, then `+` and the logical counter.
///
/// Years past 9999 (reachable with 48 bits) print with five digits, which
/// RFC 3339 does not allow but [`FromStr`] accepts, so text always round-trips.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let physical = self.physical_ms();
        let (year, month, day) = civil_from_days(physical / MS_PER_DAY);
        let ms_of_day = physical % MS_PER_DAY;
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1_000 % 60;
        let millis = ms_of_day % 1_000;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z+{}",
            self.logical()
        )
    }
}

/// Parses the [`Display`](fmt::Display) form, or a plain decimal `u64` taken as the raw value.
impl FromStr for Timestamp {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseError::Empty);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u64>()
                .map(Self)
                .map_err(|_| ParseError::RawOutOfRange {
                    input: s.to_owned(),
                });
        }
        parse_text(s).map_err(|reason| match reason {
            Reason::Malformed => ParseError::Malformed {
                input: s.to_owned(),
            },
            Reason::Field(field) => ParseError::FieldOutOfRange {
                input: s.to_owned(),
                field,
            },
            Reason::Physical => ParseError::PhysicalOutOfRange {
                input: s.to_owned(),
            },
        })
    }
}

/// Why a string is not a [`Timestamp`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input was empty.
    #[error("empty HLC timestamp")]
    Empty,
    /// The input matched neither accepted shape.
    #[error(
        "malformed HLC timestamp {input:?}: expected `YYYY-MM-DDTHH:MM:SS.mmmZ+<logical>` \
         or a decimal u64"
    )]
    Malformed {
        /// The rejected input.
        input: String,
    },
    /// A date, time or counter field had an impossible value.
    #[error("invalid HLC timestamp {input:?}: {field} is out of range")]
    FieldOutOfRange {
        /// The rejected input.
        input: String,
        /// Which field was out of range.
        field: &'static str,
    },
    /// The instant is before the epoch or past [`Timestamp::MAX_PHYSICAL_MS`].
    #[error(
        "invalid HLC timestamp {input:?}: instant is outside \
         1970-01-01T00:00:00.000Z..=10889-08-02T05:31:50.655Z"
    )]
    PhysicalOutOfRange {
        /// The rejected input.
        input: String,
    },
    /// A plain decimal input exceeded `u64::MAX`.
    #[error("invalid HLC timestamp {input:?}: raw value does not fit in a u64")]
    RawOutOfRange {
        /// The rejected input.
        input: String,
    },
}

/// Parse failure before the input is attached, so the parser stays allocation-free.
enum Reason {
    Malformed,
    Field(&'static str),
    Physical,
}

fn parse_text(s: &str) -> Result<Timestamp, Reason> {
    let mut cur = Cursor(s.as_bytes());
    let year_digits = cur.peek_digit_run();
    if year_digits > 4 && cur.0.first() == Some(&b'0') {
        // Zero-padding past four digits would give one instant many spellings.
        return Err(Reason::Malformed);
    }
    let year = cur.digits(4, 19)?;
    cur.expect(b'-')?;
    let month = cur.digits(2, 2)?;
    cur.expect(b'-')?;
    let day = cur.digits(2, 2)?;
    cur.expect(b'T')?;
    let hour = cur.digits(2, 2)?;
    cur.expect(b':')?;
    let minute = cur.digits(2, 2)?;
    cur.expect(b':')?;
    let second = cur.digits(2, 2)?;
    cur.expect(b'.')?;
    let millis = cur.digits(3, 3)?;
    cur.expect(b'Z')?;
    cur.expect(b'+')?;
    let logical = cur.digits(1, 19)?;
    if !cur.0.is_empty() {
        return Err(Reason::Malformed);
    }

    if !(1..=12).contains(&month) {
        return Err(Reason::Field("month"));
    }
    if !(1970..=MAX_PARSED_YEAR).contains(&year) {
        return Err(Reason::Physical);
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(Reason::Field("day"));
    }
    if hour > 23 {
        return Err(Reason::Field("hour"));
    }
    if minute > 59 {
        return Err(Reason::Field("minute"));
    }
    // Unix time has no leap seconds, so :60 has no millisecond to map to.
    if second > 59 {
        return Err(Reason::Field("second"));
    }
    let logical = u16::try_from(logical).map_err(|_| Reason::Field("logical counter"))?;

    let physical = days_from_civil(year, month, day) * MS_PER_DAY
        + hour * 3_600_000
        + minute * 60_000
        + second * 1_000
        + millis;
    if physical > Timestamp::MAX_PHYSICAL_MS {
        return Err(Reason::Physical);
    }
    Ok(Timestamp::new(physical, logical))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek_digit_run(&self) -> usize {
        self.0.iter().take_while(|b| b.is_ascii_digit()).count()
    }

    /// Consumes a run of `min..=max` digits; `max <= 19` keeps it within u64.
    fn digits(&mut self, min: usize, max: usize) -> Result<u64, Reason> {
        let len = self.peek_digit_run();
        if len < min || len > max {
            return Err(Reason::Malformed);
        }
        let (run, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(run.iter().fold(0, |acc, b| acc * 10 + u64::from(b - b'0')))
    }

    fn expect(&mut self, byte: u8) -> Result<(), Reason> {
        match self.0.split_first() {
            Some((&b, rest)) if b == byte => {
                self.0 = rest;
                Ok(())
            }
            _ => Err(Reason::Malformed),
        }
    }
}

const fn is_leap_year(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

const fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// The two conversions below are Howard Hinnant's proleptic-Gregorian
// algorithms, restricted to dates on or after the epoch so that unsigned
// arithmetic suffices. They are hand-rolled because humantime stops at 9999.

/// Days since 1970-01-01 to `(year, month, day)`.
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// `(year, month, day)` to days since 1970-01-01; requires `year >= 1970`.
const fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Timestamp, ParseError> {
        s.parse()
    }

    #[test]
    fn components_round_trip_through_new() {
        let ts = Timestamp::new(1_795_440_472_123, 3);
        assert_eq!(ts.physical_ms(), 1_795_440_472_123);
        assert_eq!(ts.logical(), 3);
        assert_eq!(ts.as_u64(), (1_795_440_472_123 << 16) | 3);
        assert_eq!(Timestamp::from_u64(ts.as_u64()), ts);
    }

    #[test]
    fn constants_sit_at_the_ends_of_the_range() {
        assert_eq!(Timestamp::ZERO, Timestamp::default());
        assert_eq!(Timestamp::ZERO.as_u64(), 0);
        assert_eq!(Timestamp::MAX.physical_ms(), Timestamp::MAX_PHYSICAL_MS);
        assert_eq!(Timestamp::MAX.logical(), u16::MAX);
        assert_eq!(
            Timestamp::new(Timestamp::MAX_PHYSICAL_MS, u16::MAX),
            Timestamp::MAX
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "48 bits")]
    fn new_rejects_physical_beyond_48_bits_in_debug() {
        let _ = Timestamp::new(Timestamp::MAX_PHYSICAL_MS + 1, 0);
    }

    #[test]
    fn order_is_physical_then_logical() {
        assert!(Timestamp::new(10, u16::MAX) < Timestamp::new(11, 0));
        assert!(Timestamp::new(10, 1) < Timestamp::new(10, 2));
    }

    #[test]
    fn be_bytes_sort_like_timestamps() {
        let a = Timestamp::new(10, u16::MAX);
        let b = Timestamp::new(11, 0);
        assert!(a.to_be_bytes() < b.to_be_bytes());
        assert_eq!(Timestamp::from_be_bytes(a.to_be_bytes()), a);
    }

    #[test]
    fn successor_rolls_logical_overflow_into_physical() {
        let ts = Timestamp::new(7, u16::MAX);
        assert_eq!(ts.checked_successor(), Some(Timestamp::new(8, 0)));
        assert_eq!(Timestamp::MAX.checked_successor(), None);
    }

    #[test]
    fn display_matches_documented_format() {
        let ts = Timestamp::new(1_795_440_472_123, 3);
        assert_eq!(ts.to_string(), "2026-11-23T13:27:52.123Z+3");
        assert_eq!(Timestamp::ZERO.to_string(), "1970-01-01T00:00:00.000Z+0");
    }

    #[test]
    fn display_of_max_uses_five_digit_year() {
        assert_eq!(
            Timestamp::MAX.to_string(),
            "10889-08-02T05:31:50.655Z+65535"
        );
    }

    #[test]
    fn display_handles_leap_days() {
        // 2024-02-29T00:00:00Z and 2000-02-29T23:59:59.999Z.
        assert_eq!(
            Timestamp::new(1_709_164_800_000, 0).to_string(),
            "2024-02-29T00:00:00.000Z+0"
        );
        assert_eq!(
            Timestamp::new(951_868_799_999, 1).to_string(),
            "2000-02-29T23:59:59.999Z+1"
        );
    }

    #[test]
    fn parse_accepts_display_form() {
        assert_eq!(
            parse("2026-11-23T13:27:52.123Z+3"),
            Ok(Timestamp::new(1_795_440_472_123, 3))
        );
        assert_eq!(parse("10889-08-02T05:31:50.655Z+65535"), Ok(Timestamp::MAX));
    }

    #[test]
    fn parse_accepts_raw_decimal() {
        assert_eq!(parse("0"), Ok(Timestamp::ZERO));
        assert_eq!(parse(&u64::MAX.to_string()), Ok(Timestamp::MAX));
        assert_eq!(parse("65539"), Ok(Timestamp::new(1, 3)));
    }

    #[test]
    fn parse_rejects_raw_decimal_beyond_u64() {
        assert!(matches!(
            parse("18446744073709551616"),
            Err(ParseError::RawOutOfRange { .. })
        ));
    }

    #[test]
    fn parse_rejects_empty_input() {
        assert_eq!(parse(""), Err(ParseError::Empty));
    }

    #[test]
    fn parse_rejects_malformed_shapes() {
        for bad in [
            "2026-11-23T13:27:52.123Z",
            "2026-11-23T13:27:52.123Z+",
            "2026-11-23T13:27:52.123Z++3",
            "2026-11-23T13:27:52.123Z+-3",
            "2026-11-23T13:27:52.12Z+3",
            "2026-11-23T13:27:52Z+3",
            "2026-11-23 13:27:52.123Z+3",
            "2026-11-23T13:27:52.123+00:00+3",
            "2026-1-23T13:27:52.123Z+3",
            "02026-11-23T13:27:52.123Z+3",
            "2026-11-23T13:27:52.123Z+3 ",
            " 2026-11-23T13:27:52.123Z+3",
            "-1",
            "+1",
            "0x10",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseError::Malformed { .. })),
                "{bad:?} -> {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn parse_rejects_out_of_range_fields() {
        for (bad, field) in [
            ("2026-13-01T00:00:00.000Z+0", "month"),
            ("2026-00-01T00:00:00.000Z+0", "month"),
            ("2026-02-29T00:00:00.000Z+0", "day"),
            ("2026-04-31T00:00:00.000Z+0", "day"),
            ("2026-04-00T00:00:00.000Z+0", "day"),
            ("2026-04-01T24:00:00.000Z+0", "hour"),
            ("2026-04-01T00:60:00.000Z+0", "minute"),
            ("2026-04-01T00:00:60.000Z+0", "second"),
            ("2026-04-01T00:00:00.000Z+65536", "logical counter"),
        ] {
            assert_eq!(
                parse(bad),
                Err(ParseError::FieldOutOfRange {
                    input: bad.to_owned(),
                    field
                })
            );
        }
        assert!(parse("2024-02-29T00:00:00.000Z+0").is_ok());
    }

    #[test]
    fn parse_rejects_instants_outside_48_bit_range() {
        for bad in [
            "1969-12-31T23:59:59.999Z+0",
            "10889-08-02T05:31:50.656Z+0",
            "99999-01-01T00:00:00.000Z+0",
            "9999999999999999999-01-01T00:00:00.000Z+0",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseError::PhysicalOutOfRange { .. })),
                "{bad:?} -> {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn parse_error_messages_name_the_input_and_the_problem() {
        let err = parse("nope").unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
        assert!(err.contains("YYYY-MM-DDTHH:MM:SS.mmmZ+<logical>"), "{err}");
        let err = parse("2026-04-01T24:00:00.000Z+0").unwrap_err().to_string();
        assert!(err.contains("hour is out of range"), "{err}");
    }

    #[test]
    fn calendar_conversions_are_inverse_for_every_day_to_year_10890() {
        let last_day = Timestamp::MAX_PHYSICAL_MS / MS_PER_DAY + 1;
        let mut expected = (1970, 1, 1);
        for days in 0..=last_day {
            let civil = civil_from_days(days);
            assert_eq!(civil, expected, "day {days}");
            assert_eq!(days_from_civil(civil.0, civil.1, civil.2), days);
            let (y, m, d) = expected;
            expected = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}
