//! Values ⇄ model slots. Fitting a [`TableCodec`] on the training rows decides each column's
//! codec and its parameters (scales, category lists); the fitted codec is stored with the model,
//! so generation never reads the source table again.
//!
//! Every row becomes a vector of *slots*: one per model head (a class index or a z-score) plus
//! input-only features (time of day). Attributes are the units of the autoregressive order: an
//! optional null indicator per nullable column, then the column's value (an IPv4 address is one
//! attribute with four octet heads).

pub mod category;
pub mod ip;
pub mod number;
pub mod port;
pub mod time;

use crate::error::{Error, Result};
use crate::model::spec::{training_stream, AttributeSpec, HeadSpec};
use crate::schema::{ColumnPlan, Kind, ReadAs};
use number::Scale;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Integer columns with at most this many distinct values are categories (protocol, flags, ToS).
pub const MAX_INTEGER_CATEGORIES: usize = 64;

/// One column's values, as the reader hands them over (see [`ReadAs`]).
#[derive(Debug, Clone)]
pub enum ColumnValues {
    /// Epoch seconds, interval seconds, floats.
    Float(Vec<Option<f64>>),
    /// Integers; for inet columns the IPv4 address as an integer, or -1 for an IPv6 address.
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

impl ColumnValues {
    /// No values yet, of the kind a reader hands over for `plan` (NULL text for a skipped
    /// column).
    pub fn empty_for(plan: &ColumnPlan) -> ColumnValues {
        match (plan.kind, plan.read_as) {
            (Kind::Skip, _) | (_, ReadAs::Text) => ColumnValues::Text(vec![]),
            (_, ReadAs::Int | ReadAs::Ipv4) => ColumnValues::Int(vec![]),
            _ => ColumnValues::Float(vec![]),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Float(v) => v.len(),
            ColumnValues::Int(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnValues::Float(v) => v[row].is_none(),
            ColumnValues::Int(v) => v[row].is_none(),
            ColumnValues::Text(v) => v[row].is_none(),
        }
    }
    fn as_f64(&self, row: usize) -> Option<f64> {
        match self {
            ColumnValues::Float(v) => v[row],
            ColumnValues::Int(v) => v[row].map(|x| x as f64),
            ColumnValues::Text(_) => None,
        }
    }
    fn as_text(&self, row: usize) -> Option<String> {
        match self {
            ColumnValues::Float(v) => v[row].map(|x| x.to_string()),
            ColumnValues::Int(v) => v[row].map(|x| x.to_string()),
            ColumnValues::Text(v) => v[row].clone(),
        }
    }
}

/// A fitted codec for one column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "codec", rename_all = "snake_case")]
pub enum Codec {
    /// The order column: log(1 + gap seconds) scaled; `start` is the training data's first
    /// time, `resolution` the time step of the source (1 s for NetFlow exports), `max` the
    /// longest gap seen (a generated gap never exceeds it, so no stream falls silent for longer
    /// than any stream did).
    Gap {
        scale: Scale,
        start: f64,
        resolution: f64,
        max: f64,
        /// The time-of-day input (`time::Clock::fit`).
        clock: time::Clock,
    },
    /// Octet values never seen at each of the four positions (never generated). With `own`,
    /// a flag before the octets says whether the address is the stream's own one (see
    /// `own_addresses`): a generated stream draws its own address once and keeps it.
    Ipv4 { unseen: Vec<Vec<u8>>, own: bool },
    /// Port classes never seen (never generated), and the frequent ports above 1023 that have
    /// classes of their own, ascending (option `exact_high_ports`; empty otherwise).
    Port {
        unseen: Vec<u16>,
        frequent: Vec<u16>,
    },
    /// Softmax over `values`; `other` adds a class for values seen too rarely to be emitted.
    Category { values: Vec<String>, other: bool },
    /// Integer counts: log(1 + x - min) scaled, rounded back, kept within [min, max]. With
    /// `per`, the count is modelled relative to that earlier count column of the row (bytes per
    /// packet): log(1 + x / per) scaled (see `fit_relative_counts`).
    Count {
        min: i64,
        max: i64,
        scale: Scale,
        per: Option<usize>,
    },
    /// Floats, kept within [min, max], scaled as they are or, when heavy-tailed, as
    /// ln(1 + (x - min) / step). `decimals`: every training value had at most this many decimal
    /// places (durations in milliseconds: 3), which makes the step (0.001 s) and the precision
    /// of generated values. Counting in steps, like a count column, keeps a mass of values at
    /// `min` (zero-length flows) apart from the smallest values above it, so that it comes back
    /// as exactly `min`. None: a step of 1, no rounding (models stored by stan 0.1.0 before it).
    /// `since_order`: a timestamp beside the order column (a flow's end) is modelled as the
    /// seconds after the row's order time, so a generated row keeps its own span however
    /// generated time is moved, and never ends before it starts unless training rows did.
    Continuous {
        log: bool,
        min: f64,
        max: f64,
        scale: Scale,
        decimals: Option<i32>,
        since_order: bool,
    },
    /// Not modelled; generated as NULL.
    Skip,
}

/// A column's codec with what is needed to read and write it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnCodec {
    pub name: String,
    pub type_name: String,
    pub read_as: ReadAs,
    /// The column had NULLs in training: a null indicator attribute precedes its value.
    pub nullable: bool,
    #[serde(flatten)]
    pub codec: Codec,
}

impl ColumnCodec {
    /// Slots of the column's value: one per head, plus time of day for the order column.
    /// Counted without building the head specs: this runs for every generated row.
    fn value_slots(&self) -> usize {
        match &self.codec {
            Codec::Gap { .. } => 3,
            Codec::Ipv4 { own, .. } => 4 + usize::from(*own),
            Codec::Skip => 0,
            _ => 1,
        }
    }

    fn value_heads(&self) -> Vec<HeadSpec> {
        match &self.codec {
            Codec::Gap { .. } | Codec::Count { .. } | Codec::Continuous { .. } => {
                vec![HeadSpec::Mdn]
            }
            Codec::Ipv4 { unseen, own } => {
                let flag = HeadSpec::Softmax {
                    classes: 2,
                    banned: vec![],
                };
                let octets = unseen.iter().map(|u| HeadSpec::Softmax {
                    classes: 256,
                    banned: u.iter().map(|&o| o as usize).collect(),
                });
                own.then_some(flag).into_iter().chain(octets).collect()
            }
            Codec::Port { unseen, frequent } => vec![HeadSpec::Softmax {
                classes: port::CLASSES + frequent.len(),
                banned: unseen.iter().map(|&c| c as usize).collect(),
            }],
            Codec::Category { values, other } => vec![HeadSpec::Softmax {
                classes: values.len() + usize::from(*other),
                banned: if *other { vec![values.len()] } else { vec![] },
            }],
            Codec::Skip => vec![],
        }
    }
}

/// The fitted codecs of a table, in model order (the order column first).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableCodec {
    pub columns: Vec<ColumnCodec>,
    /// Bounds on the ratio of each pair of count columns seen in training (bytes per packet).
    pub ratios: Vec<RatioBound>,
    /// Category values never seen (often enough) with an earlier column's value.
    pub pairs: Vec<PairMask>,
    /// Each training stream's own address (see `own_addresses`), in stream order, when the
    /// streams have one and there are at most `MAX_KEPT_ADDRESSES`: generated stream s keeps
    /// training stream (s mod n)'s, the stream whose identity it follows. Empty otherwise
    /// (then a generated stream keeps the first own address it draws).
    pub stream_addresses: Vec<u32>,
    /// Each training stream's longest gap in seconds (its first row's time since the table's
    /// start counts as one), in stream order, when asked for (`FitOptions::stream_max_gap`)
    /// and there are at most `MAX_KEPT_ADDRESSES` streams: generated stream s waits no longer
    /// than training stream (s mod n) ever did (`max_gap_z`). Empty: only the table's longest
    /// gap bounds a wait.
    pub stream_max_gaps: Vec<f64>,
    /// The training z-scores of each count and continuous column (see `ValueRange`). Empty in
    /// models stored before it existed: their values are only clamped when decoded.
    pub value_ranges: Vec<ValueRange>,
}

/// The pair mask of a wide column (`slot`, more than 64 classes) given an earlier category
/// column: per category value seen `min_count` times, the classes seen with it at all. None
/// when no value restricts anything.
fn wide_pair_mask(
    encoded: &EncodedTable,
    width: usize,
    given_slot: usize,
    slot: usize,
    classes: usize,
    min_count: usize,
) -> Option<PairMask> {
    let words = classes.div_ceil(64);
    let mut seen: HashMap<u32, (usize, Vec<u64>)> = HashMap::new();
    for r in 0..encoded.rows {
        let row = &encoded.slots[r * width..(r + 1) * width];
        let class = (row[slot] as usize).min(classes - 1);
        let entry = seen
            .entry(row[given_slot] as u32)
            .or_insert_with(|| (0, vec![0; words]));
        entry.0 += 1;
        entry.1[class / 64] |= 1 << (class % 64);
    }
    let all = seen.values().fold(vec![0u64; words], |mut acc, (_, w)| {
        acc.iter_mut().zip(w).for_each(|(a, b)| *a |= b);
        acc
    });
    let mut allowed_wide: Vec<(u32, Vec<u64>)> = seen
        .into_iter()
        .filter(|(_, (rows, w))| *rows >= min_count && *w != all)
        .map(|(g, (_, w))| (g, w))
        .collect();
    if allowed_wide.is_empty() {
        return None;
    }
    allowed_wide.sort_unstable();
    Some(PairMask {
        given_slot,
        slot,
        allowed: vec![],
        allowed_wide,
    })
}

/// Streams beyond this many keep no list of their addresses (the codec stays small); the same
/// bound as the streams one generation runs (`pipeline::MAX_STREAMS`).
pub const MAX_KEPT_ADDRESSES: usize = 100_000;

/// For a category column with at most 64 classes (`slot`) and an earlier port or category
/// column (`given_slot`): the classes seen at least `min_category_count` times with each value
/// of the earlier column that was itself seen that often, as a bit mask. Generated rows keep
/// it, as single values keep to what was seen: UDP gets the flag strings UDP had in training.
/// (Categories are drawn before ports, see `schema::modelling_order`; a port column that precedes
/// a category is one modelled as a category itself.)
///
/// For a column of more than 64 classes (a port, or a category with that many values) and an
/// earlier category column: the classes seen at all with each category value that was seen
/// `min_category_count` times (`allowed_wide`), so an ICMP flow gets an ICMP type and never a
/// web port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairMask {
    pub given_slot: usize,
    pub slot: usize,
    /// (earlier class, allowed classes of this column), sorted by the earlier class.
    pub allowed: Vec<(u32, u64)>,
    /// The same for a column of more than 64 classes, 64 classes a word. Empty in models
    /// stored before it existed.
    pub allowed_wide: Vec<(u32, Vec<u64>)>,
}

impl PairMask {
    pub fn allowed_for(&self, given_class: u32) -> Option<u64> {
        self.allowed
            .binary_search_by_key(&given_class, |&(c, _)| c)
            .ok()
            .map(|i| self.allowed[i].1)
    }
    pub fn allowed_words_for(&self, given_class: u32) -> Option<&[u64]> {
        self.allowed_wide
            .binary_search_by_key(&given_class, |(c, _)| *c)
            .ok()
            .map(|i| self.allowed_wide[i].1.as_slice())
    }
}

/// The classes a softmax slot may take in one row: `allowed` (1 or 0 per class) cut by each of
/// `pairs` (the slot's masks) that restricts the value `given(slot)` already drawn. Fills `out`
/// and returns true when some mask applies and leaves a class; false means `allowed` as is
/// (masks that leave nothing, a combination never seen in training, give way).
pub fn restrict_classes(
    pairs: &[PairMask],
    given: impl Fn(usize) -> u32,
    allowed: &[f32],
    out: &mut Vec<f32>,
) -> bool {
    let mut restricted = false;
    for p in pairs {
        let g = given(p.given_slot);
        let narrow = p.allowed_for(g);
        let words = p.allowed_words_for(g);
        if narrow.is_none() && words.is_none() {
            continue;
        }
        if !restricted {
            out.clear();
            out.extend_from_slice(allowed);
            restricted = true;
        }
        for (i, a) in out.iter_mut().enumerate() {
            let kept_narrow = narrow.is_none_or(|m| i < 64 && m >> i & 1 == 1);
            let kept_wide =
                words.is_none_or(|w| w.get(i / 64).is_some_and(|x| x >> (i % 64) & 1 == 1));
            if !(kept_narrow && kept_wide) {
                *a = 0.0;
            }
        }
    }
    restricted && out.iter().any(|&a| a > 0.0)
}

/// `columns[numerator] / columns[denominator]` stayed within [min, max] in every training row
/// where both were present and the denominator positive. The numerator is a count; the
/// denominator an earlier count or continuous column (packets per second of duration).
/// Generated rows keep it: the count is clamped into the bounds the earlier value implies, as
/// a count is kept within its observed range. (A mixture's tails would otherwise give, say,
/// TCP flows under 40 bytes per packet, or a million packets in under a second.)
/// With `given`, the bound held in the rows where that category column had that value (bytes
/// per packet of TCP flows), and applies to generated rows with that value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RatioBound {
    pub numerator: usize,
    pub denominator: usize,
    pub min: f64,
    pub max: f64,
    pub given: Option<(usize, String)>,
}

/// The z-scores a count or continuous column's value slot took in training. Generated values
/// keep to it (`model::draw_within`): a draw beyond an end is drawn again, except at an end where
/// training rows pile up (`censored`: zero-length flows, one-packet flows), where it takes that
/// end's value, as the mixture learned that point mass by putting about half a component beyond
/// the end.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ValueRange {
    pub slot: usize,
    pub low: f32,
    pub high: f32,
    pub low_censored: bool,
    pub high_censored: bool,
}

impl ValueRange {
    /// No bounds: every draw is kept.
    pub const fn unbounded(slot: usize) -> ValueRange {
        ValueRange {
            slot,
            low: f32::NEG_INFINITY,
            high: f32::INFINITY,
            low_censored: false,
            high_censored: false,
        }
    }
}

/// An end of a value range where at least this share of the training values sit is censored.
const CENSORED_SHARE: f64 = 0.01;

/// Category columns with at most this many values also get per-value ratio bounds.
const MAX_RATIO_CONDITIONS: usize = 32;
/// Ratio bounds are fitted for at most this many (denominator, count) pairs, in column order,
/// and per value of at most this many small category columns.
const MAX_RATIO_PAIRS: usize = 64;
const MAX_RATIO_CONDITION_COLUMNS: usize = 4;
/// A column of more than 64 classes gets pair masks given at most this many earlier category
/// columns, and one of at most 64 classes given at most this many earlier softmax columns.
const MAX_PAIR_GIVENS: usize = 8;
/// The wide masks of one model hold at most this many 64-bit words (4 MB), so the codecs stay
/// small to store, load and check whatever the columns' cardinalities.
const MAX_WIDE_MASK_WORDS: usize = 1 << 19;

/// Training rows encoded for the model, sorted by stream then time.
#[derive(Debug, Clone)]
pub struct EncodedTable {
    /// rows × slot_width values.
    pub slots: Vec<f32>,
    /// rows × attributes: 1 where the attribute has a value (0 for a NULL column's value).
    pub present: Vec<f32>,
    /// Position where each stream's rows begin (ascending), so windows never cross streams.
    pub stream_starts: Vec<usize>,
    pub rows: usize,
}

/// Where a column's attributes live in the slot vector.
#[derive(Debug, Clone, Copy)]
struct ColumnLayout {
    null_slot: Option<usize>,
    value_slot: usize,
}

/// What `TableCodec::fit_with` adds to `fit`; all off by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitOptions {
    /// Frequent ports above 1023 get classes of their own (`port::frequent`).
    pub exact_high_ports: bool,
    /// Each stream's own address is flagged where the streams have one (`own_addresses`).
    pub stream_addresses: bool,
    /// A count is modelled relative to an earlier count where that explains most of it
    /// (`fit_relative_counts`).
    pub relative_counts: bool,
    /// The time of day may cycle over two days (`time::Clock::fit`); else it is daily.
    pub two_day_clock: bool,
    /// Each stream's longest gap is kept (`TableCodec::stream_max_gaps`).
    pub stream_max_gap: bool,
}

impl TableCodec {
    /// Fits codecs on the training rows and encodes them. `stream_keys` (one per row, or empty
    /// for a single stream) separate independent sequences.
    pub fn fit(
        plans: &[ColumnPlan],
        values: &[ColumnValues],
        stream_keys: &[u64],
        min_category_count: usize,
    ) -> Result<(TableCodec, EncodedTable)> {
        Self::fit_with(
            plans,
            values,
            stream_keys,
            min_category_count,
            FitOptions::default(),
        )
    }

    /// `fit`, with what `options` turns on.
    pub fn fit_with(
        plans: &[ColumnPlan],
        values: &[ColumnValues],
        stream_keys: &[u64],
        min_category_count: usize,
        options: FitOptions,
    ) -> Result<(TableCodec, EncodedTable)> {
        let rows = values.first().map_or(0, |v| v.len());
        if rows < 2 {
            return Err(Error::NoData(format!(
                "the table has {rows} row(s); at least 2 are needed to learn from"
            )));
        }
        let order_idx = plans
            .iter()
            .position(|p| p.kind == Kind::Order)
            .expect("planned");
        let times = match &values[order_idx] {
            ColumnValues::Float(v) => v,
            _ => unreachable!("the order column is read as epoch seconds"),
        };
        let order_name = &plans[order_idx].name;
        let mut times_checked = Vec::with_capacity(rows);
        for t in times {
            match t {
                None => {
                    return Err(Error::column(
                        order_name,
                        "NULL in the order column: every row needs a time",
                    ))
                }
                Some(t) if !t.is_finite() => {
                    return Err(Error::column(
                        order_name,
                        format!("{t} is not a time a flow can have"),
                    ))
                }
                Some(t) => times_checked.push(*t),
            }
        }
        let times = times_checked;

        // Sort by stream, then time, then arrival (stable).
        let mut order: Vec<usize> = (0..rows).collect();
        let key = |r: usize| stream_keys.get(r).copied().unwrap_or(0);
        order.sort_by(|&a, &b| key(a).cmp(&key(b)).then(times[a].total_cmp(&times[b])));
        let mut stream_starts = vec![0];
        for p in 1..rows {
            if key(order[p]) != key(order[p - 1]) {
                stream_starts.push(p);
            }
        }
        let start = times.iter().copied().fold(f64::INFINITY, f64::min);
        let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut gaps = vec![0.0; rows];
        for (p, &r) in order.iter().enumerate() {
            let stream_begins = stream_starts.binary_search(&p).is_ok();
            gaps[r] = if stream_begins {
                times[r] - start
            } else {
                times[r] - times[order[p - 1]]
            };
        }
        let resolution = if times.iter().all(|t| t.fract() == 0.0) {
            1.0
        } else {
            1e-6
        };

        let mut columns = Vec::with_capacity(plans.len());
        for (plan, vals) in plans.iter().zip(values) {
            crate::interrupt::check();
            let codec = if plan.kind == Kind::Order {
                let scale = Scale::fit(gaps.iter().map(|g| g.ln_1p()));
                let max = gaps.iter().copied().fold(0.0, f64::max);
                Codec::Gap {
                    scale,
                    start,
                    resolution,
                    max,
                    clock: if options.two_day_clock {
                        time::Clock::fit(start, last)
                    } else {
                        time::Clock::DAILY
                    },
                }
            } else if plan.kind == Kind::Continuous && plan.read_as == ReadAs::Epoch {
                let after: Vec<Option<f64>> = (0..rows)
                    .map(|r| vals.as_f64(r).map(|x| x - times[r]))
                    .collect();
                match fit_column(
                    plan,
                    &ColumnValues::Float(after),
                    min_category_count,
                    options.exact_high_ports,
                )? {
                    Codec::Continuous {
                        log,
                        min,
                        max,
                        scale,
                        decimals,
                        ..
                    } => Codec::Continuous {
                        log,
                        min,
                        max,
                        scale,
                        decimals,
                        since_order: true,
                    },
                    other => other,
                }
            } else {
                fit_column(plan, vals, min_category_count, options.exact_high_ports)?
            };
            let nullable = plan.kind != Kind::Order
                && codec != Codec::Skip
                && (0..rows).any(|r| vals.is_null(r));
            columns.push(ColumnCodec {
                name: plan.name.clone(),
                type_name: plan.type_name.clone(),
                read_as: plan.read_as,
                nullable,
                codec,
            });
        }
        let own = if options.stream_addresses {
            own_addresses(&columns, values, &order, &stream_starts)
        } else {
            None
        };
        if own.is_some() {
            for col in &mut columns {
                if let Codec::Ipv4 { own, .. } = &mut col.codec {
                    *own = true;
                }
            }
        }
        if options.relative_counts {
            fit_relative_counts(&mut columns, values);
        }
        let ratios = fit_ratios(&columns, values);
        let stream_addresses = match &own {
            Some(own) if own.len() <= MAX_KEPT_ADDRESSES => own.clone(),
            _ => vec![],
        };
        let stream_max_gaps = if options.stream_max_gap && stream_starts.len() <= MAX_KEPT_ADDRESSES
        {
            let ends = stream_starts.iter().skip(1).copied().chain([rows]);
            stream_starts
                .iter()
                .zip(ends)
                .map(|(&first, end)| {
                    order[first..end]
                        .iter()
                        .map(|&r| gaps[r])
                        .fold(0.0, f64::max)
                })
                .collect()
        } else {
            vec![]
        };
        let mut codec = TableCodec {
            columns,
            ratios,
            pairs: vec![],
            stream_addresses,
            stream_max_gaps,
            value_ranges: vec![],
        };
        let encoded = codec.encode(values, &order, &gaps, &times, stream_starts, own.as_deref())?;
        codec.pairs = codec.fit_pairs(&encoded, min_category_count);
        codec.value_ranges = codec.fit_value_ranges(&encoded);
        Ok((codec, encoded))
    }

    /// The model's attributes in autoregressive order.
    pub fn attributes(&self) -> Vec<AttributeSpec> {
        let mut attrs = Vec::new();
        for col in &self.columns {
            if col.codec == Codec::Skip {
                continue;
            }
            if col.nullable {
                attrs.push(AttributeSpec {
                    name: format!("{}:null", col.name),
                    heads: vec![HeadSpec::Softmax {
                        classes: 2,
                        banned: vec![],
                    }],
                    extra_inputs: 0,
                    own_value: false,
                });
            }
            let extra_inputs = if matches!(col.codec, Codec::Gap { .. }) {
                2
            } else {
                0
            };
            attrs.push(AttributeSpec {
                name: col.name.clone(),
                heads: col.value_heads(),
                extra_inputs,
                own_value: matches!(col.codec, Codec::Ipv4 { own: true, .. }),
            });
        }
        attrs
    }

    /// Position in `attributes()` of category column `column`'s value (its single softmax head
    /// holds the value's class); an option error naming `option` when it is not one.
    pub fn category_attribute(&self, column: &str, option: &str) -> Result<usize> {
        let mut at = 0;
        let mut categories = Vec::new();
        for col in self.columns.iter().filter(|c| c.codec != Codec::Skip) {
            at += usize::from(col.nullable);
            if matches!(col.codec, Codec::Category { .. }) {
                if col.name == column {
                    return Ok(at);
                }
                categories.push(format!("\"{}\"", col.name));
            }
            at += 1;
        }
        Err(Error::option(
            option,
            format!(
                "\"{column}\" is not a category column of the table; its category columns: {}",
                if categories.is_empty() {
                    "none".to_string()
                } else {
                    categories.join(", ")
                }
            ),
        ))
    }

    /// The own value (an address's octets, as slots) generated stream `stream` keeps from the
    /// start; empty when it draws its own.
    pub fn kept_value(&self, stream: usize) -> Vec<f32> {
        if self.stream_addresses.is_empty() {
            return vec![];
        }
        let address = self.stream_addresses[training_stream(stream, self.stream_addresses.len())];
        ip::octets(address).iter().map(|&o| f32::from(o)).collect()
    }

    pub fn slot_width(&self) -> usize {
        self.attributes()
            .iter()
            .map(|a| a.heads.len() + a.extra_inputs)
            .sum()
    }

    pub fn gap_scale(&self) -> (Scale, f64, f64) {
        match &self.columns[0].codec {
            Codec::Gap {
                scale,
                start,
                resolution,
                ..
            } => (*scale, *start, *resolution),
            _ => unreachable!("the order column comes first"),
        }
    }

    /// The time-of-day input of the order column.
    pub fn clock(&self) -> time::Clock {
        match &self.columns[0].codec {
            Codec::Gap { clock, .. } => *clock,
            _ => unreachable!("the order column comes first"),
        }
    }

    /// The gap head's z-score above which generated stream `stream` may not wait (see
    /// `stream_max_gaps`); infinite when the codec keeps no gaps per stream.
    pub fn max_gap_z(&self, stream: usize) -> f32 {
        if self.stream_max_gaps.is_empty() {
            return f32::INFINITY;
        }
        let (scale, _, _) = self.gap_scale();
        let longest = self.stream_max_gaps[training_stream(stream, self.stream_max_gaps.len())];
        scale.to_z(longest.ln_1p())
    }

    /// Seconds to the next row of a stream, from the gap head's z-score.
    pub fn gap_seconds(&self, z: f32) -> f64 {
        let (scale, _, _) = self.gap_scale();
        let max = match &self.columns[0].codec {
            Codec::Gap { max, .. } => *max,
            _ => f64::INFINITY,
        };
        scale.from_z(z).exp_m1().clamp(0.0, max)
    }

    /// Value ranges from the encoded training rows (see ValueRange); NULLs do not count.
    fn fit_value_ranges(&self, encoded: &EncodedTable) -> Vec<ValueRange> {
        let width = self.slot_width();
        self.columns
            .iter()
            .zip(self.layout())
            .filter(|(c, _)| matches!(c.codec, Codec::Count { .. } | Codec::Continuous { .. }))
            .filter_map(|(_, l)| {
                let values: Vec<f32> = encoded
                    .slots
                    .chunks_exact(width)
                    .filter(|row| l.null_slot.is_none_or(|n| row[n] < 0.5))
                    .map(|row| row[l.value_slot])
                    .collect();
                let low = values.iter().copied().fold(f32::INFINITY, f32::min);
                let high = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let piled_up = |end: f32| {
                    let at = values.iter().filter(|&&z| z == end).count();
                    at as f64 >= CENSORED_SHARE * values.len() as f64
                };
                (low <= high).then(|| ValueRange {
                    slot: l.value_slot,
                    low,
                    high,
                    low_censored: piled_up(low),
                    high_censored: piled_up(high),
                })
            })
            .collect()
    }

    /// Pair masks from the encoded training rows (see PairMask).
    fn fit_pairs(&self, encoded: &EncodedTable, min_count: usize) -> Vec<PairMask> {
        let width = self.slot_width();
        let layout = self.layout();
        // Single-slot softmax columns without NULLs: (value slot, classes, is a category).
        let softmax: Vec<(usize, usize, bool)> = self
            .columns
            .iter()
            .zip(&layout)
            .filter(|(c, _)| !c.nullable)
            .filter_map(|(c, l)| match &c.codec {
                Codec::Port { frequent, .. } => {
                    Some((l.value_slot, port::CLASSES + frequent.len(), false))
                }
                Codec::Category { values, other } => {
                    Some((l.value_slot, values.len() + usize::from(*other), true))
                }
                _ => None,
            })
            .collect();
        let mut pairs = vec![];
        let mut wide_words = 0usize;
        for (j, &(slot, classes, _)) in softmax.iter().enumerate() {
            if classes > 64 {
                let givens = softmax[..j]
                    .iter()
                    .filter(|(_, _, category)| *category)
                    .take(MAX_PAIR_GIVENS);
                for &(given_slot, given_classes, _) in givens {
                    // A word per 64 classes for every earlier value: two wide columns of
                    // distinct ids would want their product; such masks are left out.
                    let words = given_classes.saturating_mul(classes.div_ceil(64));
                    if wide_words.saturating_add(words) > MAX_WIDE_MASK_WORDS {
                        continue;
                    }
                    wide_words += words;
                    crate::interrupt::check();
                    pairs.extend(wide_pair_mask(
                        encoded, width, given_slot, slot, classes, min_count,
                    ));
                }
                continue;
            }
            for &(given_slot, _, _) in softmax[..j].iter().take(MAX_PAIR_GIVENS) {
                crate::interrupt::check();
                let mut counts: HashMap<u32, [usize; 64]> = HashMap::new();
                for r in 0..encoded.rows {
                    let row = &encoded.slots[r * width..(r + 1) * width];
                    counts.entry(row[given_slot] as u32).or_insert([0; 64])[row[slot] as usize] +=
                        1;
                }
                let seen_classes = counts.values().fold(0u64, |acc, c| {
                    acc | c
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n >= min_count)
                        .fold(0, |m, (i, _)| m | 1 << i)
                });
                let mut allowed: Vec<(u32, u64)> = counts
                    .iter()
                    .filter(|(_, c)| c.iter().sum::<usize>() >= min_count)
                    .map(|(&g, c)| {
                        let mask = c
                            .iter()
                            .enumerate()
                            .filter(|(_, n)| **n >= min_count)
                            .fold(0u64, |m, (i, _)| m | 1 << i);
                        (g, mask)
                    })
                    // No constraint where nothing was seen often enough, or everything was.
                    .filter(|&(_, mask)| mask != 0 && mask != seen_classes)
                    .collect();
                if allowed.is_empty() {
                    continue;
                }
                allowed.sort_unstable();
                pairs.push(PairMask {
                    given_slot,
                    slot,
                    allowed,
                    allowed_wide: vec![],
                });
            }
        }
        pairs
    }

    fn layout(&self) -> Vec<ColumnLayout> {
        let mut slot = 0;
        let mut out = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let null_slot = col.nullable.then(|| {
                slot += 1;
                slot - 1
            });
            out.push(ColumnLayout {
                null_slot,
                value_slot: slot,
            });
            slot += col.value_slots();
        }
        out
    }

    fn encode(
        &self,
        values: &[ColumnValues],
        order: &[usize],
        gaps: &[f64],
        times: &[f64],
        stream_starts: Vec<usize>,
        own_addresses: Option<&[u32]>,
    ) -> Result<EncodedTable> {
        let width = self.slot_width();
        let attrs = self.attributes().len();
        let rows = order.len();
        let mut slots = vec![0f32; rows * width];
        let mut present = vec![1f32; rows * attrs];
        let layout = self.layout();
        let lookups: Vec<Option<std::collections::HashMap<&str, usize>>> = self
            .columns
            .iter()
            .map(|c| match &c.codec {
                Codec::Category { values, .. } => Some(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.as_str(), i))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        let mut stream = 0;
        for (p, &r) in order.iter().enumerate() {
            if p % 65_536 == 0 {
                crate::interrupt::check();
            }
            while stream_starts.get(stream + 1).is_some_and(|&s| s <= p) {
                stream += 1;
            }
            let own_address = own_addresses.map(|a| a[stream]);
            let row = &mut slots[p * width..(p + 1) * width];
            let mut attr = 0;
            for (c, col) in self.columns.iter().enumerate() {
                if col.codec == Codec::Skip {
                    continue;
                }
                let at = layout[c];
                let vals = &values[c];
                if let Some(ns) = at.null_slot {
                    let is_null = vals.is_null(r);
                    row[ns] = if is_null { 1.0 } else { 0.0 };
                    attr += 1;
                    if is_null {
                        present[p * attrs + attr] = 0.0;
                        attr += 1;
                        continue;
                    }
                }
                let v = at.value_slot;
                match &col.codec {
                    Codec::Gap { scale, clock, .. } => {
                        row[v] = scale.to_z(gaps[r].ln_1p());
                        row[v + 1..v + 3].copy_from_slice(&clock.features(times[r]));
                    }
                    Codec::Ipv4 { own, .. } => {
                        let a = vals.as_f64(r).expect("non-null") as u32;
                        if *own {
                            row[v] = f32::from(u8::from(own_address == Some(a)));
                        }
                        let first = v + usize::from(*own);
                        for (i, o) in ip::octets(a).iter().enumerate() {
                            row[first + i] = *o as f32;
                        }
                    }
                    Codec::Port { frequent, .. } => {
                        let p = vals.as_f64(r).expect("non-null") as u16;
                        row[v] = port::class_with(p, frequent) as f32
                    }
                    Codec::Category { values: kept, .. } => {
                        let text = vals.as_text(r).expect("non-null");
                        let map = lookups[c].as_ref().expect("category lookup");
                        row[v] = *map.get(text.as_str()).unwrap_or(&kept.len()) as f32;
                    }
                    Codec::Count {
                        min, scale, per, ..
                    } => {
                        let x = vals.as_f64(r).expect("non-null");
                        row[v] = scale.to_z(match per {
                            // The denominator is never NULL and at least 1 (see
                            // `fit_relative_counts`).
                            Some(d) => (x / values[*d].as_f64(r).expect("non-null")).ln_1p(),
                            None => (x - *min as f64).ln_1p(),
                        });
                    }
                    Codec::Continuous {
                        log,
                        min,
                        scale,
                        decimals,
                        since_order,
                        ..
                    } => {
                        let x = vals.as_f64(r).expect("non-null")
                            - if *since_order { times[r] } else { 0.0 };
                        row[v] = scale.to_z(if *log {
                            number::log_steps(x, *min, *decimals)
                        } else {
                            x
                        });
                    }
                    Codec::Skip => unreachable!(),
                }
                attr += 1;
            }
        }
        Ok(EncodedTable {
            slots,
            present,
            stream_starts,
            rows,
        })
    }

    /// Count column `column`'s decoded value `x`, moved into each of its ratio bounds whose
    /// condition holds (`RatioBound`); `numbers` and `out` hold the columns decoded before it.
    /// A count is decoded after the columns its bounds refer to (categories come first, and a
    /// denominator precedes its numerator), so a later count per unit of it (bytes per packet)
    /// scales with the value kept.
    fn keep_ratios(
        &self,
        column: usize,
        mut x: i64,
        numbers: &[Option<f64>],
        out: &[Option<String>],
    ) -> i64 {
        for r in self.ratios.iter().filter(|r| r.numerator == column) {
            if let Some((given, value)) = &r.given {
                if out.get(*given).and_then(Option::as_deref) != Some(value.as_str()) {
                    continue;
                }
            }
            if let Some(den) = numbers[r.denominator].filter(|&d| d > 0.0) {
                let low = (r.min * den).ceil() as i64;
                let high = (r.max * den).floor() as i64;
                x = x.clamp(low, high.max(low));
            }
        }
        x
    }

    /// Turns one generated row of slots into text values (None for NULL), one per column, in
    /// this codec's column order. `epoch` is the row's absolute time.
    pub fn decode_row(&self, slots: &[f32], epoch: f64, rng: &mut impl Rng) -> Vec<Option<String>> {
        let mut out = Vec::with_capacity(self.columns.len());
        // Decoded counts and continuous values, for the ratio bounds of later counts.
        let mut numbers: Vec<Option<f64>> = vec![None; self.columns.len()];
        // The order column's time as it is written out: a timestamp modelled after it counts
        // from there, so that it never comes out before it.
        let order_time = self
            .columns
            .iter()
            .find_map(|c| match c.codec {
                Codec::Gap { resolution, .. } => Some((epoch / resolution).round() * resolution),
                _ => None,
            })
            .unwrap_or(epoch);
        let mut slot = 0;
        for (c, col) in self.columns.iter().enumerate() {
            // The same walk as `layout`, without allocating.
            let is_null = col.nullable && slots[slot] >= 0.5;
            let v = slot + usize::from(col.nullable);
            slot = v + col.value_slots();
            if is_null {
                out.push(None);
                continue;
            }
            let text = match &col.codec {
                Codec::Gap { .. } => Some(time::format_epoch(order_time, &col.type_name)),
                Codec::Ipv4 { own, .. } => {
                    let first = v + usize::from(*own);
                    let o = |i: usize| slots[first + i].clamp(0.0, 255.0) as u8;
                    Some(ip::format([o(0), o(1), o(2), o(3)]))
                }
                Codec::Port { frequent, .. } => {
                    Some(port::decode_with(slots[v] as usize, frequent, rng).to_string())
                }
                Codec::Category { values, .. } => {
                    Some(values[(slots[v] as usize).min(values.len() - 1)].clone())
                }
                Codec::Count {
                    min,
                    max,
                    scale,
                    per,
                } => {
                    let u = scale.from_z(slots[v]).exp_m1();
                    let x = match per.and_then(|d| numbers[d]) {
                        Some(d) => (u * d).round() as i64,
                        None => (u.round() as i64).saturating_add(*min),
                    };
                    let x = self.keep_ratios(c, x.clamp(*min, *max), &numbers, &out);
                    numbers[c] = Some(x as f64);
                    Some(x.to_string())
                }
                Codec::Continuous {
                    log,
                    min,
                    max,
                    scale,
                    decimals,
                    since_order,
                } => {
                    let raw = scale.from_z(slots[v]);
                    let x = if *log {
                        number::from_log_steps(raw, *min, *decimals)
                    } else {
                        raw
                    }
                    .clamp(*min, *max);
                    let x = number::round_to_places(x, *decimals)
                        + if *since_order { order_time } else { 0.0 };
                    numbers[c] = Some(x);
                    Some(format_continuous(x, col))
                }
                Codec::Skip => None,
            };
            out.push(text);
        }
        out
    }
}

/// In at least this share of rows, one address column holds its stream's own address for the
/// streams to count as having one (a stream per host: the host is in every row).
const OWN_ADDRESS_SHARE: f64 = 0.9;

/// Per stream (in `stream_starts` order), the IPv4 address found in most of its rows in any
/// IPv4 column, when in at least `OWN_ADDRESS_SHARE` of all rows an IPv4 column holds its
/// stream's: then each stream is one host seen from its flows, and a generated stream should
/// keep one address the way a host does, instead of drawing its octets afresh every row
/// (which scatters one stream's flows over many made-up hosts). None otherwise.
fn own_addresses(
    columns: &[ColumnCodec],
    values: &[ColumnValues],
    order: &[usize],
    stream_starts: &[usize],
) -> Option<Vec<u32>> {
    let address_columns: Vec<&ColumnValues> = columns
        .iter()
        .zip(values)
        .filter(|(c, _)| matches!(c.codec, Codec::Ipv4 { .. }))
        .map(|(_, v)| v)
        .collect();
    if address_columns.is_empty() || order.is_empty() {
        return None;
    }
    let mut own = Vec::with_capacity(stream_starts.len());
    let mut covered = 0usize;
    let mut counts: std::collections::HashMap<u32, usize> = Default::default();
    for (i, &start) in stream_starts.iter().enumerate() {
        let end = stream_starts.get(i + 1).copied().unwrap_or(order.len());
        counts.clear();
        let address = |v: &ColumnValues, r: usize| v.as_f64(r).map(|a| a as u32);
        for &r in &order[start..end] {
            for (i, column) in address_columns.iter().enumerate() {
                let Some(a) = address(column, r) else {
                    continue;
                };
                // An address in two columns of one row (a flow to itself) counts once.
                if address_columns[..i]
                    .iter()
                    .all(|c| address(c, r) != Some(a))
                {
                    *counts.entry(a).or_default() += 1;
                }
            }
        }
        // The most rows; the lowest address among ties, so the choice is deterministic.
        let best = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(&a, &n)| (a, n));
        let (address, rows) = best.unwrap_or((0, 0));
        covered += rows;
        own.push(address);
    }
    (covered as f64 >= OWN_ADDRESS_SHARE * order.len() as f64).then_some(own)
}

/// A count is modelled relative to an earlier one when that explains at least this share of its
/// variance on the log scale (UGR'16: bytes per packet leaves 22 % of the bytes' variance).
const RELATIVE_EXPLAINED_SHARE: f64 = 0.5;

/// Models a count relative to an earlier count of the row where that explains most of its
/// variance (`RELATIVE_EXPLAINED_SHARE`): bytes as bytes per packet. Protocols with fixed packet
/// sizes (ICMP echo, IP-in-IP, GRE keepalives) then sit at one value whatever the packet count,
/// where on the bytes' own log scale each packet count puts them somewhere else. The earlier
/// count must never be NULL and be at least 1 in every training row (a generated row has it
/// too: it is kept within its training range).
fn fit_relative_counts(columns: &mut [ColumnCodec], values: &[ColumnValues]) {
    let denominators: Vec<usize> = (0..columns.len())
        .filter(|&c| !columns[c].nullable)
        .filter(|&c| matches!(columns[c].codec, Codec::Count { min, .. } if min >= 1))
        .collect();
    for c in 0..columns.len() {
        if !matches!(columns[c].codec, Codec::Count { .. }) {
            continue;
        }
        crate::interrupt::check();
        let own =
            Scale::fit((0..values[c].len()).filter_map(|r| Some(values[c].as_f64(r)?.ln_1p())));
        // What is left of log(1 + x) once log(denominator) is taken off.
        let residual = |d: usize| {
            Scale::fit((0..values[c].len()).filter_map(move |r| {
                Some(values[c].as_f64(r)?.ln_1p() - values[d].as_f64(r)?.ln())
            }))
        };
        let best = denominators
            .iter()
            .filter(|&&d| d < c)
            .map(|&d| (d, residual(d).sd))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((d, left)) = best else {
            continue;
        };
        if (left / own.sd).powi(2) > 1.0 - RELATIVE_EXPLAINED_SHARE {
            continue;
        }
        let relative = Scale::fit(
            (0..values[c].len())
                .filter_map(|r| Some((values[c].as_f64(r)? / values[d].as_f64(r)?).ln_1p())),
        );
        if let Codec::Count { scale, per, .. } = &mut columns[c].codec {
            *scale = relative;
            *per = Some(d);
        }
    }
}

/// Ratio bounds between every pair of count columns (the later one over the earlier one):
/// over all rows, and per value of each small category column where that is tighter.
fn fit_ratios(columns: &[ColumnCodec], values: &[ColumnValues]) -> Vec<RatioBound> {
    let counts: Vec<usize> = (0..columns.len())
        .filter(|&c| matches!(columns[c].codec, Codec::Count { .. }))
        .collect();
    // A count's denominators: earlier counts, and earlier continuous columns other than
    // timestamps (packets per second of duration).
    let denominators: Vec<usize> = (0..columns.len())
        .filter(|&c| match columns[c].codec {
            Codec::Count { .. } => true,
            Codec::Continuous { .. } => columns[c].read_as != ReadAs::Epoch,
            _ => false,
        })
        .collect();
    let conditions: Vec<(usize, &Vec<String>)> = columns
        .iter()
        .enumerate()
        .filter_map(|(c, col)| match &col.codec {
            Codec::Category { values, .. } if values.len() <= MAX_RATIO_CONDITIONS => {
                Some((c, values))
            }
            _ => None,
        })
        .collect();
    // Conditions and pairs are capped so that a wide table costs a bounded number of passes
    // over its rows (flow tables have a few counts and one or two small categories).
    let conditions = &conditions[..conditions.len().min(MAX_RATIO_CONDITION_COLUMNS)];
    let pairs: Vec<(usize, usize)> = denominators
        .iter()
        .flat_map(|&den| {
            counts
                .iter()
                .filter(move |&&num| num > den)
                .map(move |&num| (den, num))
        })
        .take(MAX_RATIO_PAIRS)
        .collect();
    let mut out = Vec::new();
    for (den, num) in pairs {
        crate::interrupt::check();
        let ratio = |r: usize| match (values[den].as_f64(r), values[num].as_f64(r)) {
            (Some(d), Some(n)) if d > 0.0 => Some(n / d),
            _ => None,
        };
        let (min, max) = (0..values[den].len())
            .filter_map(ratio)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        if !(min.is_finite() && max.is_finite()) {
            continue;
        }
        out.push(RatioBound {
            numerator: num,
            denominator: den,
            min,
            max,
            given: None,
        });
        for &(c, kept) in conditions {
            // One pass over the rows for all of the column's values.
            let index: HashMap<&str, usize> = kept
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i))
                .collect();
            let mut bounds = vec![(f64::INFINITY, f64::NEG_INFINITY); kept.len()];
            for r in 0..values[c].len() {
                let Some(x) = ratio(r) else { continue };
                let Some(text) = values[c].as_text(r) else {
                    continue;
                };
                if let Some(&i) = index.get(text.as_str()) {
                    let (lo, hi) = &mut bounds[i];
                    *lo = lo.min(x);
                    *hi = hi.max(x);
                }
            }
            for (value, (lo, hi)) in kept.iter().zip(bounds) {
                if lo.is_finite() && hi.is_finite() && (lo > min || hi < max) {
                    out.push(RatioBound {
                        numerator: num,
                        denominator: den,
                        min: lo,
                        max: hi,
                        given: Some((c, value.clone())),
                    });
                }
            }
        }
    }
    out
}

fn format_continuous(x: f64, col: &ColumnCodec) -> String {
    match col.read_as {
        ReadAs::Int => format!("{}", x.round() as i64),
        ReadAs::Epoch => time::format_epoch(x, &col.type_name),
        ReadAs::IntervalSeconds => format!("{x} seconds"),
        _ => format!("{x}"),
    }
}

fn fit_column(
    plan: &ColumnPlan,
    vals: &ColumnValues,
    min_category_count: usize,
    exact_high_ports: bool,
) -> Result<Codec> {
    let name = &plan.name;
    let non_null = (0..vals.len()).filter(|&r| !vals.is_null(r)).count();
    if plan.kind != Kind::Skip && non_null == 0 {
        return Err(Error::column(
            name,
            format!("NULL in every row: nothing to learn; skip it with columns => '{{\"{name}\": \"skip\"}}'"),
        ));
    }
    let numbers = || (0..vals.len()).filter_map(|r| vals.as_f64(r));
    match plan.kind {
        Kind::Order => unreachable!("fitted by the caller"),
        Kind::Skip => Ok(Codec::Skip),
        Kind::Ipv4 => {
            if numbers().any(|a| a < 0.0) {
                return Err(Error::column(
                    name,
                    "IPv6 addresses are not supported yet; only IPv4",
                ));
            }
            let mut seen = [[false; 256]; 4];
            for a in numbers() {
                for (i, o) in ip::octets(a as u32).iter().enumerate() {
                    seen[i][*o as usize] = true;
                }
            }
            let unseen = seen
                .iter()
                .map(|s| (0..=255u8).filter(|&o| !s[o as usize]).collect())
                .collect();
            Ok(Codec::Ipv4 { unseen, own: false })
        }
        Kind::Port => {
            if let Some(bad) = numbers().find(|p| !(0.0..=65535.0).contains(p)) {
                return Err(Error::column(
                    name,
                    format!("{bad} is not a port number (0-65535)"),
                ));
            }
            let frequent = if exact_high_ports {
                port::frequent(numbers().map(|p| p as u16), min_category_count)
            } else {
                vec![]
            };
            let mut seen = vec![false; port::CLASSES + frequent.len()];
            for p in numbers() {
                seen[port::class_with(p as u16, &frequent)] = true;
            }
            let unseen = (0..port::CLASSES as u16)
                .filter(|&c| !seen[c as usize])
                .collect();
            Ok(Codec::Port { unseen, frequent })
        }
        Kind::Category => category::fit(vals, min_category_count),
        Kind::Integer => {
            // A category (protocol, flags, ToS) when few values cover the rows, each seen often
            // enough to be emitted; otherwise a count.
            let mut frequency: std::collections::HashMap<i64, usize> =
                std::collections::HashMap::new();
            for x in numbers() {
                *frequency.entry(x as i64).or_default() += 1;
            }
            let frequent: usize = frequency
                .values()
                .filter(|&&n| n >= min_category_count)
                .sum();
            if frequency.len() <= MAX_INTEGER_CATEGORIES && frequent * 10 >= non_null * 9 {
                category::fit(vals, min_category_count)
            } else {
                fit_count(name, numbers())
            }
        }
        Kind::Count => fit_count(name, numbers()),
        Kind::Continuous => fit_continuous(name, numbers()),
    }
}

fn fit_continuous(name: &str, numbers: impl Iterator<Item = f64> + Clone) -> Result<Codec> {
    if let Some(bad) = numbers.clone().find(|x| !x.is_finite()) {
        return Err(Error::column(
            name,
            format!("{bad} cannot be modelled; use NULL for unknown values"),
        ));
    }
    let mut sorted: Vec<f64> = numbers.collect();
    sorted.sort_by(f64::total_cmp);
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let log = number::is_heavy_tailed(&sorted);
    let decimals = number::decimal_places(&sorted);
    let scale = if log {
        Scale::fit(sorted.iter().map(|&x| number::log_steps(x, min, decimals)))
    } else {
        Scale::fit(sorted.iter().copied())
    };
    if !(scale.mean.is_finite() && scale.sd.is_finite() && (max - min).is_finite()) {
        return Err(Error::column(
            name,
            format!("values from {min} to {max} span too wide a range to model; scale the column down or skip it"),
        ));
    }
    Ok(Codec::Continuous {
        log,
        min,
        max,
        scale,
        decimals,
        since_order: false,
    })
}

fn fit_count(name: &str, numbers: impl Iterator<Item = f64> + Clone) -> Result<Codec> {
    let min = numbers.clone().fold(f64::INFINITY, f64::min);
    let max = numbers.clone().fold(f64::NEG_INFINITY, f64::max);
    if min < 0.0 {
        return Err(Error::column(
            name,
            format!(
                "negative count {min}; declare the column continuous with columns => '{{\"{name}\": \"continuous\"}}'"
            ),
        ));
    }
    let scale = Scale::fit(numbers.map(|x| (x - min).ln_1p()));
    Ok(Codec::Count {
        min: min as i64,
        max: max as i64,
        scale,
        per: None,
    })
}

#[cfg(test)]
mod tests;
