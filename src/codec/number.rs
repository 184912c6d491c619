//! Counts and continuous values, scaled for a mixture density head.

use serde::{Deserialize, Serialize};

/// Mean and standard deviation of the transformed values, so the model sees z-scores.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Scale {
    pub mean: f64,
    pub sd: f64,
}

impl Scale {
    pub fn fit(values: impl Iterator<Item = f64> + Clone) -> Scale {
        let (n, sum) = values
            .clone()
            .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
        let mean = if n > 0 { sum / n as f64 } else { 0.0 };
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
        // A constant column still gets a usable scale.
        Scale {
            mean,
            sd: var.sqrt().max(1e-3),
        }
    }
    pub fn to_z(&self, v: f64) -> f32 {
        ((v - self.mean) / self.sd) as f32
    }
    pub fn from_z(&self, z: f32) -> f64 {
        z as f64 * self.sd + self.mean
    }
}

/// Heavy tails (packets, bytes, durations) are modelled on a log scale.
pub fn is_heavy_tailed(sorted: &[f64]) -> bool {
    if sorted.is_empty() || sorted[0] < 0.0 {
        return false;
    }
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    q(0.99) > 20.0 * (q(0.5).abs() + 1e-9) || q(1.0) > 1000.0 * (q(0.5).abs() + 1.0)
}

/// The most decimal places (at most [`MAX_DECIMAL_PLACES`]) any of `values` has, or None when
/// some value has more: the precision a source records (durations in milliseconds: 3).
pub fn decimal_places(values: &[f64]) -> Option<i32> {
    (0..=MAX_DECIMAL_PLACES).find(|&d| {
        let factor = 10f64.powi(d);
        values.iter().all(|x| {
            let scaled = x * factor;
            // A decimal's nearest double, scaled, lands within a few units in the last place.
            (scaled - scaled.round()).abs() <= 8.0 * f64::EPSILON * scaled.abs().max(1.0)
        })
    })
}

/// A heavy-tailed value's model scale: ln(1 + the steps of `decimals` places it is above `min`).
pub fn log_steps(x: f64, min: f64, decimals: Option<i32>) -> f64 {
    ((x - min) * steps_per_unit(decimals)).ln_1p()
}

/// The inverse of [`log_steps`].
pub fn from_log_steps(u: f64, min: f64, decimals: Option<i32>) -> f64 {
    u.exp_m1() / steps_per_unit(decimals) + min
}

/// `x` rounded to `decimals` places (as it is without). Dividing by an exact power of ten gives
/// the double nearest the decimal, which prints as that decimal.
pub fn round_to_places(x: f64, decimals: Option<i32>) -> f64 {
    match decimals {
        Some(_) => {
            let steps = steps_per_unit(decimals);
            (x * steps).round() / steps
        }
        None => x,
    }
}

fn steps_per_unit(decimals: Option<i32>) -> f64 {
    decimals.map_or(1.0, |d| 10f64.powi(d))
}

/// Finer than microseconds counts as full precision.
pub const MAX_DECIMAL_PLACES: i32 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_places_are_those_the_values_have() {
        assert_eq!(decimal_places(&[0.0, 5.0, 104.0]), Some(0));
        assert_eq!(decimal_places(&[0.0, 1.372, 22.052, 0.1 + 0.2]), Some(3));
        assert_eq!(decimal_places(&[0.5, 2.25]), Some(2));
        assert_eq!(decimal_places(&[1e-6, 3.0]), Some(6));
        assert_eq!(decimal_places(&[1.0 / 3.0]), None);
        assert_eq!(decimal_places(&[1e-7]), None);
        assert_eq!(decimal_places(&[]), Some(0));
    }

    /// Counted in steps of the last decimal place, zero and the smallest values above it lie
    /// far apart on the log scale (ln 5 for 0 and 4 ms, against 0.004 in seconds).
    #[test]
    fn log_steps_count_the_last_decimal_place() {
        for x in [0.0, 0.004, 1.372, 30_000.5] {
            assert!((from_log_steps(log_steps(x, 0.0, Some(3)), 0.0, Some(3)) - x).abs() < 1e-9);
            assert_eq!(log_steps(x, 0.0, None), x.ln_1p());
        }
        assert!((log_steps(0.004, 0.0, Some(3)) - 5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn scale_round_trips() {
        let v = [1.0, 2.0, 3.0, 10.0];
        let s = Scale::fit(v.iter().copied());
        for x in v {
            assert!((s.from_z(s.to_z(x)) - x).abs() < 1e-5);
        }
    }

    #[test]
    fn bytes_are_heavy_tailed_and_a_normal_column_is_not() {
        let mut bytes: Vec<f64> = (0..1000)
            .map(|i| if i % 50 == 0 { 1e6 } else { 60.0 + i as f64 })
            .collect();
        bytes.sort_by(f64::total_cmp);
        assert!(is_heavy_tailed(&bytes));
        let normal: Vec<f64> = (0..1000).map(|i| -1.0 + i as f64 / 500.0).collect();
        assert!(!is_heavy_tailed(&normal));
    }
}
