//! The STAN network (paper section 4), its training loop and its sampler. No pgrx here.
//!
//! Design choice (recorded here because the paper differs): the paper gives every attribute its
//! own window CNN. The window of past rows is the same for every attribute of a row, so by
//! default we run one shared window CNN per row and give each head a small MLP that sees the
//! CNN's summary of the past, the most recent row, and (mask B) the current row's earlier
//! attributes. The factorisation P(x_ij | x_{i-k..i-1}, x_{i,1..j-1}) is unchanged; generation
//! costs one CNN pass per row instead of one per attribute. `cnn_per_attribute` gives the
//! paper's layout; benches/RESULTS.md has the measurement behind the default.

pub mod budget;
pub mod cpu;
pub mod device;
pub mod heap;
pub mod net;
pub mod sample;
pub mod spec;
pub mod train;

use crate::codec::ValueRange;
pub use net::StanNet;
pub use spec::{AttributeSpec, HeadSpec, Mask, ModelConfig};

/// A gap head's z-score `z`, at most `max`: the stream waits no longer than the training stream
/// it follows ever did (`codec::TableCodec::stream_max_gaps`). Capped rather than drawn again:
/// drawing again turned every long wait into a typical short one, and on UGR'16 made 6-12 %
/// more rows than capping (benches/RESULTS.md). A NaN is left as it came.
pub fn capped_gap(z: f32, max: f32) -> f32 {
    if z > max {
        max
    } else {
        z
    }
}

/// Per slot of a `width`-slot row, its value range from `ranges` (`codec::TableCodec::
/// value_ranges`), unbounded where none is given: what both samplers look a head's range up in.
pub fn ranges_by_slot(width: usize, ranges: &[ValueRange]) -> Vec<ValueRange> {
    let mut by_slot: Vec<ValueRange> = (0..width).map(ValueRange::unbounded).collect();
    for range in ranges.iter().filter(|r| r.slot < width) {
        by_slot[range.slot] = *range;
    }
    by_slot
}

/// Draws of a value head before the last one is clamped into its range instead.
const VALUE_DRAWS: usize = 16;

/// A value head's z-score from `draw`, within its column's training range (`ValueRange`): a
/// draw beyond an end is drawn again, so the head samples its mixture truncated to the range,
/// except beyond a censored end, where it takes the end's value. Clamping every draw instead
/// piled them up at the training maximum: on UGR'16, up to 10 copies per sample of the day's
/// one largest flow (2.2 GB) and 275-649 flows lasting exactly the longest training duration
/// (benches/RESULTS.md). After `VALUE_DRAWS` misses the last draw is clamped.
/// A NaN is left as it came.
pub fn draw_within(range: &ValueRange, mut draw: impl FnMut() -> f32) -> f32 {
    let mut z = draw();
    for _ in 1..VALUE_DRAWS {
        if z < range.low {
            if range.low_censored {
                return range.low;
            }
        } else if z > range.high {
            if range.high_censored {
                return range.high;
            }
        } else {
            return z;
        }
        z = draw();
    }
    if z < range.low {
        range.low
    } else if z > range.high {
        range.high
    } else {
        z
    }
}

#[cfg(test)]
mod tests {
    use super::{capped_gap, draw_within, ValueRange, VALUE_DRAWS};

    #[test]
    fn values_outside_their_range_are_drawn_again() {
        let range = ValueRange {
            low: -1.0,
            high: 1.0,
            ..ValueRange::unbounded(0)
        };
        let mut draws = [5.0, -3.0, 0.25, 9.0].into_iter();
        assert_eq!(draw_within(&range, || draws.next().unwrap()), 0.25);
        assert_eq!(draws.next(), Some(9.0), "stops at the first draw within");
        let mut calls = 0;
        let always_high = draw_within(&range, || {
            calls += 1;
            4.0
        });
        assert_eq!((always_high, calls), (1.0, VALUE_DRAWS));
        assert_eq!(draw_within(&range, || -4.0), -1.0);
        assert_eq!(draw_within(&ValueRange::unbounded(0), || 1e30), 1e30);
        assert!(draw_within(&range, || f32::NAN).is_nan());
        // Beyond a censored end a draw takes the end's value; beyond the other it is drawn again.
        let zero_piled_up = ValueRange {
            low_censored: true,
            ..range
        };
        let mut draws = [-3.0, 0.5].into_iter();
        assert_eq!(draw_within(&zero_piled_up, || draws.next().unwrap()), -1.0);
        let mut draws = [3.0, 0.5].into_iter();
        assert_eq!(draw_within(&zero_piled_up, || draws.next().unwrap()), 0.5);
    }

    #[test]
    fn gaps_beyond_the_bound_are_capped() {
        assert_eq!(capped_gap(0.5, 1.0), 0.5);
        assert_eq!(capped_gap(3.0, 1.0), 1.0);
        assert_eq!(capped_gap(7.0, f32::INFINITY), 7.0);
        assert!(capped_gap(f32::NAN, 1.0).is_nan());
    }
}
