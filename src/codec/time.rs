//! The order column: gaps between a stream's consecutive rows (log-scaled), and time of day as
//! an input feature.

use chrono::DateTime;

pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// sin and cos of the time of day, so 23:59 and 00:00 are neighbours.
pub fn time_of_day_features(epoch: f64) -> [f32; 2] {
    let phase = (epoch.rem_euclid(SECONDS_PER_DAY) / SECONDS_PER_DAY) * std::f64::consts::TAU;
    [phase.sin() as f32, phase.cos() as f32]
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

    #[test]
    fn midnight_neighbours_are_close() {
        let a = time_of_day_features(86_399.0);
        let b = time_of_day_features(86_400.0);
        assert!((a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3);
    }
}
