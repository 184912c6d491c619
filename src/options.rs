//! Training options (the `options` jsonb of `stan_train`): one place for each option's default,
//! its valid range and its validation. Unknown keys are an error that lists the valid ones.

use crate::error::{Error, Result};
use crate::model::Mask;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Rows of context (k).
    pub window: usize,
    pub epochs: usize,
    /// Seconds of training at most.
    pub max_time: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Gaussian components per mixture density head.
    pub mixtures: usize,
    /// Depth and width of the window CNN.
    pub conv_layers: usize,
    pub conv_channels: usize,
    pub hidden: usize,
    pub head_hidden: usize,
    pub mask: Mask,
    /// One window CNN per attribute (the paper's layout) instead of a shared one.
    pub cnn_per_attribute: bool,
    /// Category values seen fewer times are never emitted.
    pub min_category_count: usize,
    pub validation_fraction: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub seed: u64,
    /// `auto`, `cpu` or `cuda`; empty means the `stan.device` setting.
    pub device: String,
    /// Rows read at most: beyond it, a seeded uniform sample of whole streams (0: no limit).
    #[serde(default)]
    pub max_rows: u64,
    /// Frequent ports above 1023 get classes of their own instead of sharing a bin of 100.
    /// Models stored before the option existed had none, hence the serde default of false.
    #[serde(default)]
    pub exact_high_ports: bool,
    /// How the learning rate moves during training.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Width of each training stream's learned identity (0: none, as in models stored before
    /// the option existed): generated stream s follows training stream s mod streams.
    #[serde(default)]
    pub stream_embedding: usize,
    /// Where each stream is one host (its address in nearly every row), a generated stream
    /// keeps one address of its own instead of drawing its octets afresh every row. Off in
    /// models stored before the option existed.
    #[serde(default)]
    pub stream_addresses: bool,
    /// A category column (the protocol) whose rare values' rows training draws more often (see
    /// `model::train::row_emphasis`), so the model learns what such rows look like; the shares
    /// it generates stay the training ones. None: every row alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_by: Option<String>,
    /// A count is modelled relative to an earlier count where that narrows it (bytes per
    /// packet; `codec::fit_relative_counts`). Off in models stored before the option existed.
    #[serde(default)]
    pub relative_counts: bool,
    /// When the training rows leave more than an hour of the day unseen, the time of day
    /// cycles over two days (`codec::time::Clock::fit`). Off: the daily clock.
    #[serde(default)]
    pub two_day_clock: bool,
    /// A generated stream waits no longer than the training stream it follows ever did
    /// (`codec::TableCodec::stream_max_gaps`). Off in models stored before the option existed.
    #[serde(default)]
    pub stream_max_gap: bool,
}

/// `cosine`: from the learning rate down to 5 % of it along a half cosine over the training
/// budget (whichever of `epochs` and `max_time` comes first), so a run that is stopped by its
/// time limit still ends with small steps; `plateau`: halved after 2 epochs without a better
/// validation loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    #[default]
    Cosine,
    Plateau,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            window: 10,
            epochs: 20,
            max_time: DEFAULT_MAX_TIME,
            batch_size: 0,
            learning_rate: 0.0,
            mixtures: 10,
            conv_layers: 1,
            conv_channels: 8,
            hidden: 64,
            head_hidden: 0,
            mask: Mask::B,
            cnn_per_attribute: false,
            min_category_count: 5,
            validation_fraction: 0.1,
            patience: 6,
            seed: 0,
            device: String::new(),
            max_rows: 0,
            exact_high_ports: true,
            lr_schedule: LrSchedule::Cosine,
            stream_embedding: 8,
            stream_addresses: true,
            balance_by: None,
            relative_counts: true,
            two_day_clock: false,
            stream_max_gap: true,
        }
    }
}

/// Seconds of training by default: a day of flows (850k rows) trains in under ten minutes.
pub const DEFAULT_MAX_TIME: f64 = 480.0;
/// From this many rows the default batch is `LARGE_BATCH` windows instead of `SMALL_BATCH`.
pub const LARGE_TABLE_ROWS: usize = 100_000;
pub const SMALL_BATCH: usize = 64;
pub const LARGE_BATCH: usize = 256;
/// The default width of every head's hidden layer below `LARGE_TABLE_ROWS` rows, and from there.
pub const SMALL_HEAD_HIDDEN: usize = 64;
pub const LARGE_HEAD_HIDDEN: usize = 128;

impl TrainOptions {
    /// Fills in what depends on the table: `batch_size` 0 means 64 windows below 100,000 rows
    /// (on tables of thousands of rows small batches converge better) and 256 from there (more
    /// windows per second, and a better loss within the same time on 165k simulated rows);
    /// `learning_rate` 0 means 0.001 × √(batch / 64); `head_hidden` 0 means 64 below 100,000
    /// rows and 128 from there (on UGR'16's 664k rows the wider heads raised the protocol F1 in
    /// six training runs of six; on 10,000 simulated rows they miss the paper's Table 2 check:
    /// benches/RESULTS.md).
    pub fn resolved(&self, rows: usize) -> TrainOptions {
        let mut o = self.clone();
        if o.head_hidden == 0 {
            o.head_hidden = if rows >= LARGE_TABLE_ROWS {
                LARGE_HEAD_HIDDEN
            } else {
                SMALL_HEAD_HIDDEN
            };
        }
        if o.batch_size == 0 {
            o.batch_size = if rows >= LARGE_TABLE_ROWS {
                LARGE_BATCH
            } else {
                SMALL_BATCH
            };
        }
        if o.learning_rate == 0.0 {
            o.learning_rate = 0.001 * (o.batch_size as f64 / SMALL_BATCH as f64).sqrt();
        }
        o
    }
}

/// Every key with its accepted values, for error messages.
pub const KEYS: &[(&str, &str)] = &[
    ("window", "integer 1..512"),
    ("epochs", "integer 1..10000"),
    ("max_time", "seconds > 0"),
    (
        "batch_size",
        "integer 2..65536 (default 64, or 256 from 100,000 rows)",
    ),
    (
        "learning_rate",
        "number in (0, 1] (default 0.001 x sqrt(batch_size / 64))",
    ),
    ("mixtures", "integer 1..64"),
    ("conv_layers", "integer 0..8"),
    ("conv_channels", "integer 1..256"),
    (
        "stream_embedding",
        "integer 0..64 (width of each stream's learned identity; 0: none)",
    ),
    ("hidden", "integer 1..4096"),
    (
        "head_hidden",
        "integer 1..4096 (default 64, or 128 from 100,000 rows)",
    ),
    ("mask", "\"A\" or \"B\""),
    ("cnn_per_attribute", "true or false"),
    ("min_category_count", "integer 1..1000000"),
    ("validation_fraction", "number in [0, 0.5]"),
    ("patience", "integer 1..1000"),
    ("seed", "integer >= 0"),
    ("device", "\"auto\", \"cpu\" or \"cuda\""),
    ("max_rows", "integer 100..10000000000, or 0 for no limit"),
    ("exact_high_ports", "true or false"),
    ("relative_counts", "true or false"),
    ("two_day_clock", "true or false"),
    ("stream_max_gap", "true or false"),
    ("stream_addresses", "true or false"),
    (
        "balance_by",
        "a category column whose rare values' rows train more often, or null",
    ),
    ("lr_schedule", "\"cosine\" or \"plateau\""),
];

fn valid_keys() -> String {
    KEYS.iter()
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn int(key: &str, v: &Value, lo: u64, hi: u64) -> Result<usize> {
    match v.as_u64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(n as usize),
        _ => Err(Error::option(
            key,
            format!("{v} is not an integer in {lo}..{hi}"),
        )),
    }
}

fn number(key: &str, v: &Value, ok: impl Fn(f64) -> bool, what: &str) -> Result<f64> {
    match v.as_f64() {
        Some(x) if x.is_finite() && ok(x) => Ok(x),
        _ => Err(Error::option(key, format!("{v} is not {what}"))),
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| Error::option(key, format!("{v} is not true or false")))
}

impl TrainOptions {
    pub fn parse(json: &Value) -> Result<TrainOptions> {
        let mut o = TrainOptions::default();
        let obj = match json {
            Value::Null => return Ok(o),
            Value::Object(m) => m,
            other => {
                return Err(Error::option(
                    "options",
                    format!("{other} is not a JSON object"),
                ))
            }
        };
        for (key, v) in obj {
            let k = key.as_str();
            match k {
                "window" => o.window = int(k, v, 1, 512)?,
                "epochs" => o.epochs = int(k, v, 1, 10_000)?,
                "max_time" => {
                    o.max_time = number(k, v, |x| x > 0.0, "a positive number of seconds")?
                }
                "batch_size" => o.batch_size = int(k, v, 2, 65_536)?,
                "learning_rate" => {
                    o.learning_rate = number(k, v, |x| x > 0.0 && x <= 1.0, "in (0, 1]")?
                }
                "mixtures" => o.mixtures = int(k, v, 1, 64)?,
                "conv_layers" => o.conv_layers = int(k, v, 0, 8)?,
                "conv_channels" => o.conv_channels = int(k, v, 1, 256)?,
                "stream_embedding" => o.stream_embedding = int(k, v, 0, 64)?,
                "hidden" => o.hidden = int(k, v, 1, 4096)?,
                "head_hidden" => o.head_hidden = int(k, v, 1, 4096)?,
                "mask" => {
                    o.mask = match v.as_str() {
                        Some("A") | Some("a") => Mask::A,
                        Some("B") | Some("b") => Mask::B,
                        _ => return Err(Error::option(k, format!("{v} is not \"A\" or \"B\""))),
                    }
                }
                "cnn_per_attribute" => o.cnn_per_attribute = boolean(k, v)?,
                "min_category_count" => o.min_category_count = int(k, v, 1, 1_000_000)?,
                "validation_fraction" => {
                    o.validation_fraction =
                        number(k, v, |x| (0.0..=0.5).contains(&x), "in [0, 0.5]")?
                }
                "patience" => o.patience = int(k, v, 1, 1000)?,
                "seed" => o.seed = int(k, v, 0, i64::MAX as u64)? as u64,
                "exact_high_ports" => o.exact_high_ports = boolean(k, v)?,
                "relative_counts" => o.relative_counts = boolean(k, v)?,
                "two_day_clock" => o.two_day_clock = boolean(k, v)?,
                "stream_max_gap" => o.stream_max_gap = boolean(k, v)?,
                "stream_addresses" => o.stream_addresses = boolean(k, v)?,
                "balance_by" => {
                    o.balance_by = match v {
                        Value::Null => None,
                        Value::String(column) => Some(column.clone()),
                        _ => {
                            return Err(Error::option(
                                k,
                                format!("{v} is not a column name (a JSON string) or null"),
                            ))
                        }
                    }
                }
                "max_rows" => {
                    o.max_rows = int(k, v, 0, 10_000_000_000)? as u64;
                    if o.max_rows != 0 && o.max_rows < 100 {
                        return Err(Error::option(
                            k,
                            format!("{v} is too few rows to learn from; use at least 100, or 0 for no limit"),
                        ));
                    }
                }
                "lr_schedule" => {
                    o.lr_schedule = match v.as_str() {
                        Some("cosine") => LrSchedule::Cosine,
                        Some("plateau") => LrSchedule::Plateau,
                        _ => {
                            return Err(Error::option(
                                k,
                                format!("{v} is not \"cosine\" or \"plateau\""),
                            ))
                        }
                    }
                }
                "device" => {
                    o.device = match v.as_str() {
                        Some(d @ ("auto" | "cpu" | "cuda")) => d.to_string(),
                        _ => {
                            return Err(Error::option(
                                k,
                                format!("{v} is not \"auto\", \"cpu\" or \"cuda\""),
                            ))
                        }
                    }
                }
                _ => {
                    return Err(Error::option(
                        key,
                        format!("unknown option; valid options: {}", valid_keys()),
                    ))
                }
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let o = TrainOptions::parse(&json!({"window": 4, "mask": "A"})).unwrap();
        assert_eq!((o.window, o.mask, o.epochs), (4, Mask::A, 20));
        assert!(o.relative_counts);
        let o = TrainOptions::parse(&json!({"relative_counts": false})).unwrap();
        assert!(!o.relative_counts);
        assert!(!o.two_day_clock);
        let o = TrainOptions::parse(&json!({"two_day_clock": true})).unwrap();
        assert!(o.two_day_clock);
        assert!(TrainOptions::parse(&json!({"two_day_clock": 2})).is_err());
        assert!(TrainOptions::default().stream_max_gap);
        let o = TrainOptions::parse(&json!({"stream_max_gap": false})).unwrap();
        assert!(!o.stream_max_gap);
        assert!(TrainOptions::parse(&json!({"stream_max_gap": "yes"})).is_err());
    }

    #[test]
    fn batch_learning_rate_and_head_width_follow_the_table_unless_given() {
        let o = TrainOptions::parse(&json!({})).unwrap();
        let small = o.resolved(5_000);
        assert_eq!((small.batch_size, small.learning_rate), (64, 0.001));
        let large = o.resolved(850_000);
        assert_eq!((large.batch_size, large.learning_rate), (256, 0.002));
        let given = TrainOptions::parse(&json!({"batch_size": 32, "learning_rate": 0.01}))
            .unwrap()
            .resolved(850_000);
        assert_eq!((given.batch_size, given.learning_rate), (32, 0.01));
        assert_eq!((small.head_hidden, large.head_hidden), (64, 128));
        let narrow = TrainOptions::parse(&json!({"head_hidden": 64}))
            .unwrap()
            .resolved(850_000);
        assert_eq!(narrow.head_hidden, 64);
    }

    #[test]
    fn unknown_and_ill_typed_keys_are_errors_naming_the_key() {
        let e = TrainOptions::parse(&json!({"windw": 4}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"windw\"") && e.contains("window (integer"),
            "{e}"
        );
        let e = TrainOptions::parse(&json!({"epochs": "many"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"epochs\""), "{e}");
        let e = TrainOptions::parse(&json!({"learning_rate": -1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"learning_rate\""), "{e}");
    }
}
