//! Which minutes of the civil calendar an expression matches, and the search
//! for the next one. Everything here is wall-clock time without a zone;
//! `wall_clock` maps it to instants.
//!
//! A pattern is a set per field (bit `n` set: value `n` matches) plus the two
//! day rules, which need the month at hand: `L`, `W` and `#` name different
//! days in different months. So the search works a month at a time: it
//! computes the month's matching days as one 31-bit mask, takes the first day
//! at or after the start, then the first hour and minute on it.
//!
//! The choice a reader would question: why not a crate? cronq used saffron
//! until its answers had to follow cronie's rule for the two day fields (a
//! field whose text starts with `*` makes them combine with AND) and the
//! clamped `nW` (`31W` in June is Wednesday the 30th); saffron can express
//! neither. croner, the maintained crate with `L`, `W` and `#`, documents a
//! choice of OR or AND for every expression, not cronie's rule chosen by the
//! text, and computes on chrono where cronq's zones are jiff's. The sets and
//! masks here are a page of arithmetic, checked by a differential test
//! against croniter in cronie mode (`tests/cron_croniter.rs`).
//!
//! Every search is bounded. The day rules depend only on the Gregorian
//! calendar, which repeats every 400 years (4,800 months, a whole number of
//! weeks), and `Schedule::parse` refuses a pattern with no matching day in
//! one such cycle; so from any start a match lies within 4,801 months.

use jiff::civil::{Date, DateTime};

/// Months the search looks at before giving up: one Gregorian cycle plus
/// the partial month it starts in.
const MAX_MONTHS: usize = 400 * 12 + 1;

/// The day-of-month field, evaluated per month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DayOfMonth {
    /// Bit `d` set: day `d` (1-31) matches; days past the month's end never.
    Days(u32),
    /// `L`: the last day.
    Last,
    /// `LW`: the last Monday-to-Friday.
    LastWeekday,
    /// `L-n`: `n` days before the last day; none in a month too short.
    BeforeLast(u8),
    /// `nW`: the weekday nearest day `n`, with `n` clamped to the month's last
    /// day, never leaving the month.
    NearestWeekday(u8),
}

/// The day-of-week field, evaluated per month. Weekdays count from Sunday = 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DayOfWeek {
    /// Bit `w` set: weekday `w` (0-6) matches.
    Days(u8),
    /// `wL`: the last weekday `w` of the month.
    Last(u8),
    /// `w#n`: the `n`th weekday `w` of the month, if it has one.
    Nth { weekday: u8, nth: u8 },
}

/// How the two day fields combine, as in cronie: when either field's text
/// starts with `*` a day must match both, otherwise matching one is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DayRule {
    Both,
    Either,
}

/// A parsed expression, ready to search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern {
    /// Bit `m` set: minute `m` (0-59).
    pub(super) minutes: u64,
    /// Bit `h` set: hour `h` (0-23).
    pub(super) hours: u32,
    pub(super) dom: DayOfMonth,
    /// Bit `m` set: month `m` (1-12).
    pub(super) months: u16,
    pub(super) dow: DayOfWeek,
    pub(super) rule: DayRule,
}

impl Pattern {
    /// The first matching minute strictly after `from`'s minute.
    pub(super) fn next_after(&self, from: DateTime) -> Option<DateTime> {
        let minute = truncate(from).checked_add(jiff::SignedDuration::from_mins(1));
        self.first_from(minute.ok()?)
    }

    /// The first matching minute at or after `from`; a `from` inside a minute
    /// counts from the next one.
    pub(super) fn next_at_or_after(&self, from: DateTime) -> Option<DateTime> {
        if from.second() == 0 && from.subsec_nanosecond() == 0 {
            self.first_from(from)
        } else {
            self.next_after(from)
        }
    }

    /// Whether any day of a whole Gregorian cycle matches (hours and minutes
    /// always have a value). The years are arbitrary: every cycle is alike.
    pub(super) fn fires_at_all(&self) -> bool {
        (2000..2400).any(|year| {
            (1..=12).any(|month| self.has_month(month) && self.month_days(year, month) != 0)
        })
    }

    /// The search from `start`, a whole minute.
    fn first_from(&self, start: DateTime) -> Option<DateTime> {
        let (mut year, mut month) = (start.year(), start.month());
        // Only the start's own day is limited to times from the start on.
        let mut first_day = start.day();
        let mut floor = (start.hour(), start.minute());
        for _ in 0..MAX_MONTHS {
            if self.has_month(month) {
                let mut days = self.month_days(year, month) & (u32::MAX << first_day);
                while days != 0 {
                    let day = days.trailing_zeros() as i8;
                    let from = if day == first_day { floor } else { (0, 0) };
                    if let Some((hour, minute)) = self.time_from(from) {
                        return DateTime::new(year, month, day, hour, minute, 0, 0).ok();
                    }
                    days &= days - 1;
                }
            }
            (year, month) = if month == 12 {
                (year.checked_add(1)?, 1)
            } else {
                (year, month + 1)
            };
            if year > 9999 {
                return None;
            }
            first_day = 1;
            floor = (0, 0);
        }
        None
    }

    fn has_month(&self, month: i8) -> bool {
        self.months & (1 << month) != 0
    }

    /// The first matching (hour, minute) at or after `(hour, minute)` in a day.
    fn time_from(&self, (hour, minute): (i8, i8)) -> Option<(i8, i8)> {
        let mut hours = self.hours & (u32::MAX << hour);
        while hours != 0 {
            let h = hours.trailing_zeros() as i8;
            let from = if h == hour { minute } else { 0 };
            let minutes = self.minutes & (u64::MAX << from);
            if minutes != 0 {
                return Some((h, minutes.trailing_zeros() as i8));
            }
            hours &= hours - 1;
        }
        None
    }

    /// Bit `d` set: day `d` of the month matches both day fields as `rule`
    /// combines them.
    pub(super) fn month_days(&self, year: i16, month: i8) -> u32 {
        let Ok(first) = Date::new(year, month, 1) else {
            return 0;
        };
        let month = Month {
            last: first.days_in_month() as u32,
            first_weekday: first.weekday().to_sunday_zero_offset() as u32,
        };
        let dom = month.dom_mask(self.dom);
        let dow = month.dow_mask(self.dow);
        match self.rule {
            DayRule::Both => dom & dow,
            DayRule::Either => dom | dow,
        }
    }
}

/// What the day rules need to know of one month.
struct Month {
    /// Its last day, 28-31.
    last: u32,
    /// The weekday of its first day, Sunday = 0.
    first_weekday: u32,
}

impl Month {
    fn weekday(&self, day: u32) -> u32 {
        (self.first_weekday + day - 1) % 7
    }

    /// Bits 1 to `last`.
    fn all_days(&self) -> u32 {
        (u32::MAX >> (31 - self.last)) & !1
    }

    fn dom_mask(&self, dom: DayOfMonth) -> u32 {
        match dom {
            DayOfMonth::Days(days) => days & self.all_days(),
            DayOfMonth::Last => 1 << self.last,
            DayOfMonth::LastWeekday => 1 << self.nearest_weekday(self.last),
            DayOfMonth::BeforeLast(n) => match self.last.checked_sub(u32::from(n)) {
                Some(day) if day >= 1 => 1 << day,
                _ => 0,
            },
            DayOfMonth::NearestWeekday(n) => 1 << self.nearest_weekday(u32::from(n).min(self.last)),
        }
    }

    /// The Monday-to-Friday nearest `day`, within the month: a Saturday
    /// moves to Friday, or to Monday the 3rd when it is the 1st; a Sunday
    /// moves to Monday, or to Friday when it is the last day.
    fn nearest_weekday(&self, day: u32) -> u32 {
        match self.weekday(day) {
            6 if day == 1 => 3,
            6 => day - 1,
            0 if day == self.last => day - 2,
            0 => day + 1,
            _ => day,
        }
    }

    fn dow_mask(&self, dow: DayOfWeek) -> u32 {
        match dow {
            DayOfWeek::Days(weekdays) => (1..=self.last)
                .filter(|&day| weekdays & (1 << self.weekday(day)) != 0)
                .fold(0, |mask, day| mask | 1 << day),
            DayOfWeek::Last(weekday) => {
                let back = (self.weekday(self.last) + 7 - u32::from(weekday)) % 7;
                1 << (self.last - back)
            }
            DayOfWeek::Nth { weekday, nth } => {
                let first = 1 + (u32::from(weekday) + 7 - self.first_weekday) % 7;
                let day = first + 7 * (u32::from(nth) - 1);
                if day <= self.last { 1 << day } else { 0 }
            }
        }
    }
}

fn truncate(at: DateTime) -> DateTime {
    at.with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(year: i16, month: i8) -> Month {
        let first = Date::new(year, month, 1).unwrap();
        Month {
            last: first.days_in_month() as u32,
            first_weekday: first.weekday().to_sunday_zero_offset() as u32,
        }
    }

    fn days(mask: u32) -> Vec<u32> {
        (1..=31).filter(|d| mask & (1 << d) != 0).collect()
    }

    #[test]
    fn nearest_weekday_stays_in_the_month_and_clamps_to_its_end() {
        // August 2026 starts on a Saturday: 1W is Monday the 3rd.
        let aug = month(2026, 8);
        assert_eq!(days(aug.dom_mask(DayOfMonth::NearestWeekday(1))), [3]);
        // May 2026 ends on a Sunday: 31W is Friday the 29th.
        let may = month(2026, 5);
        assert_eq!(days(may.dom_mask(DayOfMonth::NearestWeekday(31))), [29]);
        // June 2027 has 30 days, the 30th a Wednesday.
        let june = month(2027, 6);
        assert_eq!(days(june.dom_mask(DayOfMonth::NearestWeekday(31))), [30]);
        // February 2027 ends on a Sunday the 28th: Friday the 26th.
        let feb = month(2027, 2);
        assert_eq!(days(feb.dom_mask(DayOfMonth::NearestWeekday(31))), [26]);
        assert_eq!(days(feb.dom_mask(DayOfMonth::LastWeekday)), [26]);
    }

    #[test]
    fn nth_and_last_weekdays() {
        // January 2026 starts on a Thursday.
        let jan = month(2026, 1);
        let nth = |weekday, nth| days(jan.dow_mask(DayOfWeek::Nth { weekday, nth }));
        assert_eq!(nth(4, 1), [1]);
        assert_eq!(nth(3, 1), [7]);
        assert_eq!(nth(5, 5), [30]);
        assert_eq!(nth(0, 5), Vec::<u32>::new());
        assert_eq!(days(jan.dow_mask(DayOfWeek::Last(6))), [31]);
        assert_eq!(days(jan.dow_mask(DayOfWeek::Last(0))), [25]);
        assert_eq!(days(jan.dom_mask(DayOfMonth::BeforeLast(30))), [1]);
        assert_eq!(month(2026, 2).dom_mask(DayOfMonth::BeforeLast(28)), 0);
    }
}
