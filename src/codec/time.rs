//! The order column: gaps between a stream's consecutive rows (log-scaled), and time of day as
//! an input feature.

use chrono::DateTime;
use serde::{Deserialize, Serialize};

pub const SECONDS_PER_DAY: f64 = 86_400.0;
/// Training rows that leave at most this much of a day unseen get the daily clock.
pub const DAILY_GAP: f64 = 3_600.0;

/// The time of day as the heads see it: sin and cos of the phase in a cycle of `period`
/// seconds that begins at `origin` (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub period: f64,
    pub origin: f64,
}

impl Clock {
    /// One cycle a day, so 23:59 and 00:00 are neighbours.
    pub const DAILY: Clock = Clock {
        period: SECONDS_PER_DAY,
        origin: 0.0,
    };

    /// The clock for training rows from `first` to `last` (epoch seconds). When they leave at
    /// most `DAILY_GAP` of the day unseen, the clock is daily. Otherwise the unseen hours would
    /// sit on a daily clock between the last hour seen and the first (a training day that ends
    /// at 18:00 would make its evening look like its early morning); so the cycle takes two
    /// days from the first row's midnight, and the rest of that day continues the hours before.
    pub fn fit(first: f64, last: f64) -> Clock {
        if last - first >= SECONDS_PER_DAY - DAILY_GAP || !(first.is_finite() && last.is_finite()) {
            Clock::DAILY
        } else {
            Clock {
                period: 2.0 * SECONDS_PER_DAY,
                origin: (first / SECONDS_PER_DAY).floor() * SECONDS_PER_DAY,
            }
        }
    }

    /// sin and cos of the phase of `epoch`.
    pub fn features(&self, epoch: f64) -> [f32; 2] {
        let phase =
            ((epoch - self.origin).rem_euclid(self.period) / self.period) * std::f64::consts::TAU;
        [phase.sin() as f32, phase.cos() as f32]
    }
}

/// Text that PostgreSQL's input function for the column's type accepts.
pub fn format_epoch(epoch: f64, type_name: &str) -> String {
    let micros = (epoch * 1e6).round() as i64;
    let dt = DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .naive_utc();
    if type_name == "date" {
        dt.format("%Y-%m-%d").to_string()
    } else if type_name.starts_with("timestamp with time zone") {
        dt.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_for_each_time_type() {
        let t = 1_460_332_899.5; // 2016-04-11 00:01:39.5
        assert_eq!(
            format_epoch(t, "timestamp without time zone"),
            "2016-04-11 00:01:39.500000"
        );
        assert_eq!(
            format_epoch(t, "timestamp with time zone"),
            "2016-04-11 00:01:39.500000+00"
        );
        assert_eq!(format_epoch(t, "date"), "2016-04-11");
    }

    fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
        (a[0] - b[0]).hypot(a[1] - b[1])
    }

    #[test]
    fn midnight_neighbours_are_close() {
        let clock = Clock::DAILY;
        assert!(distance(clock.features(86_399.0), clock.features(86_400.0)) < 1e-3);
    }

    #[test]
    fn a_day_of_rows_gets_the_daily_clock() {
        let monday = 1_460_332_800.0; // 2016-04-11 00:00 UTC
        assert_eq!(Clock::fit(monday, monday + 86_400.0), Clock::DAILY);
        assert_eq!(
            Clock::fit(monday + 1_800.0, monday + 86_000.0),
            Clock::DAILY
        );
        assert_ne!(
            Clock::fit(monday + 4_000.0, monday + 86_000.0),
            Clock::DAILY
        );
        assert_eq!(
            Clock::fit(monday + 60.0, monday + 9.0 * 86_400.0),
            Clock::DAILY
        );
    }

    /// Rows from 00:00 to 18:00: the evening continues the afternoon instead of sitting beside
    /// the early morning, and the hours seen keep their order.
    #[test]
    fn less_than_a_day_of_rows_keeps_the_unseen_hours_after_the_last_seen() {
        let monday = 1_460_332_800.0;
        let hour = 3_600.0;
        let clock = Clock::fit(monday + 99.0, monday + 18.0 * hour - 1.0);
        assert_eq!(clock.period, 2.0 * 86_400.0);
        assert_eq!(clock.origin, monday);
        let at = |h: f64| clock.features(monday + h * hour);
        let evening = at(23.0);
        assert!(distance(evening, at(17.0)) < distance(evening, at(3.0)));
        assert!(distance(evening, at(17.0)) < distance(evening, at(12.0)));
        // The daily clock puts 23:00 nearer 03:00 than 17:00.
        let daily = |h: f64| Clock::DAILY.features(monday + h * hour);
        assert!(distance(daily(23.0), daily(3.0)) < distance(daily(23.0), daily(17.0)));
    }
}
