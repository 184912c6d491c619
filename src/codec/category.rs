//! Categories: a softmax over the values seen at least `min_category_count` times. Rarer values
//! share one "other" class that is learned but never emitted, so no rare (identifying) value is
//! ever copied into synthetic rows.

use super::{Codec, ColumnValues};
use crate::error::Result;
use std::collections::HashMap;

pub fn fit(vals: &ColumnValues, min_count: usize) -> Result<Codec> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in 0..vals.len() {
        if let Some(v) = vals.as_text(r) {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut kept: Vec<(String, usize)> = counts
        .iter()
        .filter(|(_, &n)| n >= min_count)
        .map(|(v, &n)| (v.clone(), n))
        .collect();
    // Every value (nearly) unique, as in an id column (Zeek's `uid`): nothing could ever be
    // emitted, so the column is not modelled and comes back NULL (the extension says so).
    if kept.is_empty() {
        return Ok(Codec::Skip);
    }
    // Most frequent first; ties by value so fitting is deterministic.
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other = kept.len() < counts.len();
    Ok(Codec::Category {
        values: kept.into_iter().map(|(v, _)| v).collect(),
        other,
    })
}
