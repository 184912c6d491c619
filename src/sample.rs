//! The `max_rows` sample: whole streams, chosen uniformly at random (seeded), until the budget is
//! spent. Whole streams keep each stream's time structure intact, which is what the model learns.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Which streams to read.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSample {
    /// Streams read whole.
    pub whole: HashSet<u64>,
    /// At most one stream read only up to its first `rows` rows in time order: used when a
    /// stream is larger than what is left of the budget and nothing else would fill it.
    pub partial: Option<(u64, u64)>,
    pub rows: u64,
}

/// Chooses streams (`(key, rows)` pairs) in a seeded random order, taking each one that still fits
/// in `max_rows`; when no stream fits whole, the first one in that order is cut to the budget.
pub fn sample_streams(counts: &[(u64, u64)], max_rows: u64, seed: u64) -> StreamSample {
    let mut order: Vec<(u64, u64)> = counts.to_vec();
    // Sorting first makes the shuffle independent of the order the database returned them in.
    order.sort_unstable();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5354_414e));
    let mut whole = HashSet::new();
    let mut rows = 0u64;
    for &(key, n) in &order {
        if rows + n <= max_rows {
            whole.insert(key);
            rows += n;
        }
    }
    let mut partial = None;
    if whole.is_empty() {
        if let Some(&(key, _)) = order.first() {
            partial = Some((key, max_rows));
            rows = max_rows;
        }
    }
    StreamSample {
        whole,
        partial,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_stays_within_the_budget_and_is_seeded() {
        let counts: Vec<(u64, u64)> = (0..200).map(|k| (k, 100 + (k * 37) % 900)).collect();
        let total: u64 = counts.iter().map(|c| c.1).sum();
        let s = sample_streams(&counts, total / 4, 7);
        assert!(
            s.rows <= total / 4 && s.rows > total / 4 - 1000,
            "{}",
            s.rows
        );
        assert!(s.partial.is_none());
        let again = sample_streams(
            &counts.iter().rev().copied().collect::<Vec<_>>(),
            total / 4,
            7,
        );
        assert_eq!(
            s, again,
            "the database's row order must not change the sample"
        );
        assert_ne!(s.whole, sample_streams(&counts, total / 4, 8).whole);
        // Each stream has a fair chance: over seeds, small and large streams are both chosen.
        let picked = |k: u64| {
            (0..50)
                .filter(|&seed| sample_streams(&counts, total / 4, seed).whole.contains(&k))
                .count()
        };
        assert!(
            picked(0) > 5 && picked(24) > 5,
            "{} {}",
            picked(0),
            picked(24)
        );
    }

    #[test]
    fn one_stream_larger_than_the_budget_is_cut() {
        let s = sample_streams(&[(1, 1_000_000)], 50_000, 0);
        assert!(s.whole.is_empty());
        assert_eq!((s.partial, s.rows), (Some((1, 50_000)), 50_000));
    }
}
