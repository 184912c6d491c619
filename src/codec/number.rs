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

#[cfg(test)]
mod tests {
    use super::*;

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
