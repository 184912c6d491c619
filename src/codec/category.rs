//! Categories: a softmax over the values seen at least `min_category_count` times. Rarer values
//! share one "other" class that is learned but never emitted, so no rare (identifying) value is
//! ever copied into synthetic rows.

use super::{Codec, ColumnValues};
use crate::error::{Error, Result};
use std::collections::HashMap;

pub fn fit(name: &str, vals: &ColumnValues, min_count: usize) -> Result<Codec> {
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
    if kept.is_empty() {
        return Err(Error::column(
            name,
            format!("no value occurs at least {min_count} times (option min_category_count); nothing can be emitted"),
        ));
    }
    // Most frequent first; ties by value so fitting is deterministic.
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other = kept.len() < counts.len();
    Ok(Codec::Category {
        values: kept.into_iter().map(|(v, _)| v).collect(),
        other,
    })
}
