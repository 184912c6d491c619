//! Upper estimates of the memory a training or a generation holds at its peak, checked before
//! anything large is allocated. Each option is bounded on its own, but their product is what
//! takes memory (a window of 512 with batches of 65,536 wants hundreds of gigabytes), so the
//! product is what a budget bounds. The extension sets the budget from a superuser-only setting;
//! without one (plain `cargo test`, the benchmarks) nothing is refused.

use super::spec::{embedding_dim, HeadSpec, ModelConfig};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

static BUDGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the bytes one training or generation may plan to hold (`u64::MAX`: no limit).
pub fn set_budget(bytes: u64) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

/// What libtorch and the allocator add on top of the tensors counted below (autograd's
/// workspace, allocator caching), and what a backend holds before any of them (libtorch's own
/// start, the rows as read, the codecs): calibrated so that the estimate stays above the
/// measured peaks (docs/experiments/memory-budget.md).
const OVERHEAD: f64 = 1.75;
const FIXED: u64 = 128 << 20;
const F32: u64 = 4;
const VALIDATION_WINDOWS: u64 = super::train::VALIDATION_CHUNK as u64;

/// The sizes the estimates are made of.
struct Sizes {
    params: u64,
    window: u64,
    features: u64,
    channels: u64,
    layers: u64,
    hidden: u64,
    /// Every head's hidden units, and every head's outputs, summed over heads.
    head_units: u64,
    outputs: u64,
    head_inputs: u64,
    slots: u64,
    attributes: u64,
    /// The CPU engine's per-class contributions to later heads, in floats.
    contributions: u64,
}

fn sizes(config: &ModelConfig) -> Sizes {
    let features = config.feature_width() as u64;
    let window = config.window as u64;
    let layers = config.conv_layers as u64;
    let channels = if layers == 0 {
        1
    } else {
        config.conv_channels as u64
    };
    let pooled = if window >= 2 && features >= 2 {
        (window / 2) * (features / 2)
    } else {
        window * features
    };
    let hidden = config.hidden as u64;
    let identity = config.identity_width() as u64;
    let head_in = hidden + 2 * features + identity;
    let head_hidden = config.head_hidden as u64;
    let cnns = if config.cnn_per_attribute {
        config.attributes.len() as u64
    } else {
        1
    };
    let mut heads = 0u64;
    let mut outputs = 0u64;
    let mut embeddings = 0u64;
    // Softmax heads' classes, in head order: the CPU engine precomputes, per class, what the
    // class contributes to every later head's hidden layer.
    let mut softmax_classes = vec![];
    for (a, attr) in config.attributes.iter().enumerate() {
        for (h, head) in attr.heads.iter().enumerate() {
            if let HeadSpec::Softmax { classes, .. } = head {
                embeddings += (*classes * embedding_dim(*classes)) as u64;
                softmax_classes.push((heads, *classes as u64));
            }
            heads += 1;
            outputs += config.head_outputs(a, h) as u64;
        }
    }
    let contributions = softmax_classes
        .iter()
        .map(|&(at, classes)| classes * (heads - at) * head_hidden)
        .sum();
    let conv = layers * (channels * channels * 9 + 4 * channels);
    let params = cnns * (conv + channels * pooled * hidden + hidden)
        + heads * (head_in * head_hidden + head_hidden)
        + head_hidden * outputs
        + outputs
        + embeddings
        + config.streams as u64 * identity;
    Sizes {
        params,
        window,
        features,
        channels,
        layers: layers.max(1),
        hidden,
        head_units: heads * head_hidden,
        outputs,
        head_inputs: head_in,
        slots: config.slot_width() as u64,
        attributes: config.attributes.len() as u64,
        contributions,
    }
}

fn scaled(bytes: u64) -> u64 {
    FIXED.saturating_add((bytes as f64 * OVERHEAD).min(u64::MAX as f64 / 2.0) as u64)
}

/// A training's peak: the parameters with their gradients, Adam's two moments and the best
/// epoch's copy, and the head masks; the rows as read and encoded, and their window index; and
/// the larger of one batch's activations, kept for the backward pass, and one validation pass's.
pub fn training_bytes(config: &ModelConfig, rows: usize, batch: usize) -> u64 {
    let s = sizes(config);
    let (rows, batch) = (rows as u64, batch as u64);
    let parameters = s.params * F32 * 5 + s.head_units * s.head_inputs * F32;
    let data = rows * (s.window * 24 + (s.slots + s.attributes) * 8 + s.slots * 32);
    let convolved = s.channels * s.layers * s.window * s.features;
    let training = s.window * s.slots
        + s.window * s.features
        + 6 * convolved
        + 2 * s.channels * s.window * s.features / 4
        + 3 * s.hidden
        + s.head_inputs
        + 4 * s.head_units
        + 4 * s.outputs;
    let validation = s.window * s.slots
        + s.window * s.features
        + 2 * convolved
        + s.channels * s.window * s.features / 4
        + s.hidden
        + s.head_inputs
        + s.head_units
        + s.outputs;
    let activations = (batch * training).max(VALIDATION_WINDOWS * validation) * F32;
    scaled(parameters.saturating_add(data).saturating_add(activations))
}

/// A generation's peak: the weights, the CPU engine's per-class tables, and per stream its
/// window, its kept
/// convolution outputs (at most 256 MB of them in all, see `pipeline::Generator`) and one
/// step's activations.
pub fn generation_bytes(config: &ModelConfig, streams: usize) -> u64 {
    let s = sizes(config);
    let streams = streams as u64;
    let kept = (streams * s.channels * s.window * s.features * F32).min(256 << 20);
    let per_stream =
        s.window * s.features + s.hidden + s.head_inputs + s.head_units + s.outputs + s.slots;
    // The weights three times over (the stored bytes, libtorch's copy, the plain arrays), and
    // the codecs, the decoder and the rows of one step.
    scaled(
        s.params * F32 * 3 + s.contributions * F32 + (32 << 20) + kept + streams * per_stream * F32,
    )
}

/// Refuses `bytes` beyond the budget, saying what `what` would take and which options drive it.
pub fn check(what: &str, bytes: u64, drivers: &str) -> Result<()> {
    refuse_beyond(what, bytes, drivers, BUDGET.load(Ordering::Relaxed))
}

fn refuse_beyond(what: &str, bytes: u64, drivers: &str, budget: u64) -> Result<()> {
    if bytes <= budget {
        return Ok(());
    }
    Err(Error::LimitExceeded(format!(
        "{what} would take about {} MB, more than stan.max_memory_mb ({} MB) allows; {drivers}, or ask a superuser to raise the setting",
        bytes >> 20,
        budget >> 20
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::fixtures;
    use crate::model::Mask;

    fn config(window: usize, hidden: usize) -> ModelConfig {
        ModelConfig {
            attributes: vec![fixtures::order(), fixtures::categorical("pr", &[3, 1670])],
            window,
            conv_layers: 1,
            conv_channels: 8,
            hidden,
            head_hidden: hidden,
            mixtures: 10,
            mask: Mask::B,
            cnn_per_attribute: false,
            streams: 0,
            stream_dim: 0,
            stream_rate: false,
        }
    }

    #[test]
    fn estimates_grow_with_what_takes_memory() {
        // Beyond what every backend holds anyway.
        let training = |window, hidden, rows, batch| {
            training_bytes(&config(window, hidden), rows, batch) - FIXED
        };
        let small = training(10, 64, 10_000, 64);
        assert!(small > 1 << 20 && small < 256 << 20, "{small}");
        assert!(training(512, 64, 10_000, 64) > 20 * small);
        assert!(training(10, 64, 10_000, 65_536) > 100 * small);
        assert!(training(10, 4096, 10_000, 64) > 20 * small);
        assert!(training(10, 64, 10_000_000, 64) > 100 * small);
        let generation = |streams| generation_bytes(&config(10, 64), streams) - FIXED;
        assert!(generation(100_000) > 10 * generation(1));
    }

    #[test]
    fn the_budget_refuses_only_beyond_itself() {
        assert!(refuse_beyond("training", 1 << 29, "lower window", 1 << 30).is_ok());
        let err = refuse_beyond("training", 3 << 30, "lower window", 1 << 30).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)));
        assert!(err.to_string().contains("3072 MB") && err.to_string().contains("lower window"));
    }
}
