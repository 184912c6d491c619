//! What the network looks like, derived from the codecs and the options; stored with the model.

use serde::{Deserialize, Serialize};

/// One output of an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadSpec {
    /// Mixture density over a z-scored value.
    Mdn,
    /// Softmax over `classes`; `banned` classes are never sampled (the rare-category class,
    /// ports and octets never seen in training).
    Softmax { classes: usize, banned: Vec<usize> },
}

/// A unit of the autoregressive order: its heads are sampled together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeSpec {
    pub name: String,
    pub heads: Vec<HeadSpec>,
    /// Input-only features that follow the heads' slots (time of day for the order column).
    pub extra_inputs: usize,
    /// Head 0 (2 classes) says whether the value is the stream's own; a generated stream keeps
    /// one own value (a host keeps its address): the one it is given (its training stream's,
    /// from the codec) or else the first it draws. All such attributes share that one value.
    pub own_value: bool,
}

impl AttributeSpec {
    pub fn is_null_indicator(&self) -> bool {
        self.name.ends_with(":null")
    }
    pub fn slots(&self) -> usize {
        self.heads.len() + self.extra_inputs
    }
}

/// Eq. 4 (A: attributes of a row independent given the window) or Eq. 5 (B: each attribute also
/// sees the current row's earlier attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mask {
    A,
    B,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub attributes: Vec<AttributeSpec>,
    /// Rows of context (k).
    pub window: usize,
    pub conv_layers: usize,
    pub conv_channels: usize,
    pub hidden: usize,
    pub head_hidden: usize,
    pub mixtures: usize,
    pub mask: Mask,
    /// One window CNN per attribute (the paper) instead of one shared by all.
    pub cnn_per_attribute: bool,
    /// Streams seen in training, each with a learned identity of `stream_dim` floats that every
    /// head sees, so a generated stream follows one stream's habits (a tunnel endpoint keeps
    /// sending GRE) instead of drifting between them. 0 (models stored before identities, or one
    /// stream): none.
    pub streams: usize,
    pub stream_dim: usize,
    /// The identity ends with one fixed, untrained feature: the stream's training rows, as a
    /// z-score of log(rows) over the streams (`train::stream_rates`). Learned identities drift
    /// towards the average stream; this one says outright how busy the stream is.
    pub stream_rate: bool,
}

/// Generated stream `s` follows training stream `s mod streams`.
pub fn training_stream(stream: usize, streams: usize) -> usize {
    stream % streams.max(1)
}

/// Width of a softmax head's learned input embedding.
pub fn embedding_dim(classes: usize) -> usize {
    classes.clamp(2, 8)
}

impl ModelConfig {
    /// Width of a stream's identity in the heads' input (0 without identities).
    pub fn identity_width(&self) -> usize {
        if self.streams > 0 {
            self.stream_dim + usize::from(self.stream_rate)
        } else {
            0
        }
    }
    /// The identity a generated stream uses (see `training_stream`).
    pub fn identity_of(&self, stream: usize) -> usize {
        training_stream(stream, self.streams)
    }
    /// Outputs of head `h` of attribute `a`: 3 per mixture component, or a logit per class.
    pub fn head_outputs(&self, a: usize, h: usize) -> usize {
        match &self.attributes[a].heads[h] {
            HeadSpec::Mdn => 3 * self.mixtures,
            HeadSpec::Softmax { classes, .. } => *classes,
        }
    }
    pub fn slot_width(&self) -> usize {
        self.attributes.iter().map(AttributeSpec::slots).sum()
    }
    /// First slot of each attribute.
    pub fn slot_offsets(&self) -> Vec<usize> {
        let mut at = 0;
        self.attributes
            .iter()
            .map(|a| {
                at += a.slots();
                at - a.slots()
            })
            .collect()
    }
    /// Feature range [start, end) of each slot in the embedded row.
    pub fn slot_feature_ranges(&self) -> Vec<(usize, usize)> {
        let mut at = 0;
        let mut ranges = Vec::with_capacity(self.slot_width());
        for attr in &self.attributes {
            let widths = attr
                .heads
                .iter()
                .map(|h| match h {
                    HeadSpec::Mdn => 1,
                    HeadSpec::Softmax { classes, .. } => embedding_dim(*classes),
                })
                .chain(std::iter::repeat_n(1, attr.extra_inputs));
            for w in widths {
                ranges.push((at, at + w));
                at += w;
            }
        }
        ranges
    }
    pub fn feature_width(&self) -> usize {
        self.slot_feature_ranges().last().map_or(0, |r| r.1)
    }
    /// Which current-row features head `h` of attribute `a` may see: with mask B every earlier
    /// attribute; with either mask the earlier heads of its own attribute (an address's octets
    /// are drawn in order, so the mask treats the address as one attribute while its octets
    /// stay consistent with each other).
    pub fn visible_features(&self, a: usize, h: usize) -> Vec<bool> {
        let ranges = self.slot_feature_ranges();
        let offsets = self.slot_offsets();
        let mut visible = vec![false; self.feature_width()];
        let first_visible_slot = if self.mask == Mask::B { 0 } else { offsets[a] };
        for &(start, end) in &ranges[first_visible_slot..offsets[a] + h] {
            visible[start..end].fill(true);
        }
        visible
    }
}

/// Small networks for tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// The order attribute: the gap to the previous row, then time of day as extra inputs.
    pub fn order() -> AttributeSpec {
        AttributeSpec {
            name: "te".into(),
            heads: vec![HeadSpec::Mdn],
            extra_inputs: 2,
            own_value: false,
        }
    }

    /// An attribute with one softmax head per entry of `classes`.
    pub fn categorical(name: &str, classes: &[usize]) -> AttributeSpec {
        AttributeSpec {
            name: name.into(),
            heads: classes
                .iter()
                .map(|&classes| HeadSpec::Softmax {
                    classes,
                    banned: vec![],
                })
                .collect(),
            extra_inputs: 0,
            own_value: false,
        }
    }

    pub fn numeric(name: &str) -> AttributeSpec {
        AttributeSpec {
            name: name.into(),
            heads: vec![HeadSpec::Mdn],
            extra_inputs: 0,
            own_value: false,
        }
    }

    /// A test network whose only value attribute (1, after the order) is `numeric("td")`, with
    /// that head fixed to the mixture ½ N(-1, 1) + ½ N(3, 1) whatever the window holds: 69 % of
    /// its mass lies in [-1.5, 3.5].
    pub fn fixed_mixture_net(window: usize) -> crate::model::StanNet {
        let net = crate::model::StanNet::new(
            small_config(vec![order(), numeric("td")], window),
            tch::Device::Cpu,
        );
        let vars = net.vs.variables();
        tch::no_grad(|| {
            let _ = vars["head.a1h0.out.weight"].shallow_clone().zero_();
            let bias = tch::Tensor::from_slice(&[0f32, 0.0, -1.0, 3.0, 0.0, 0.0]);
            vars["head.a1h0.out.bias"].shallow_clone().copy_(&bias);
        });
        net
    }

    /// Draws of a fixed mixture (`fixed_mixture_net`) kept to [-1.5, 3.5] (`bounded`) and not
    /// (`unbounded`): all of the first inside, without a pile-up at the ends (drawn again, not
    /// clamped), and many of the second outside.
    pub fn assert_drawn_within(bounded: &[f32], unbounded: &[f32]) {
        let outside = |v: &[f32]| v.iter().filter(|&&z| !(-1.5..=3.5).contains(&z)).count();
        assert_eq!(outside(bounded), 0, "{bounded:?}");
        let ends = bounded.iter().filter(|&&z| z == -1.5 || z == 3.5).count();
        assert_eq!(ends, 0, "values clamped to an end of the range");
        let share = outside(unbounded) as f64 / unbounded.len() as f64;
        assert!(
            (0.2..0.45).contains(&share),
            "{share} of unbounded draws outside"
        );
    }

    /// Per stream, the own values it flagged (`own`), and every unflagged value (`others`): each
    /// stream flagged often and always the same value, while unflagged values vary.
    pub fn assert_own_values_kept(own: &[Vec<Vec<f32>>], mut others: Vec<Vec<f32>>) {
        for (s, values) in own.iter().enumerate() {
            assert!(values.len() > 5, "stream {s}: {} own rows", values.len());
            assert!(
                values.iter().all(|v| v == &values[0]),
                "stream {s}: {values:?}"
            );
        }
        others.sort_by(|a, b| a.partial_cmp(b).unwrap());
        others.dedup();
        assert!(others.len() > 5, "{others:?}");
    }

    /// For the samplers' gap-cap tests: `rows` are (stream, gap z-score) pairs of one step;
    /// stream 0's must stay within `bound` (counted in `tally.0`), the other streams' gaps
    /// above it are counted in `tally.1`.
    pub fn tally_capped_gaps(
        rows: impl IntoIterator<Item = (usize, f32)>,
        bound: f32,
        tally: &mut (usize, usize),
    ) {
        for (stream, z) in rows {
            if stream == 0 {
                assert!(z <= bound, "gap z {z} above {bound}");
                tally.0 += 1;
            } else if z > bound {
                tally.1 += 1;
            }
        }
    }

    /// A network over `attributes` with a `window`-row window and distinct small widths (so a
    /// transposed weight shows up as a wrong result, not a coincidence).
    pub fn small_config(attributes: Vec<AttributeSpec>, window: usize) -> ModelConfig {
        ModelConfig {
            attributes,
            window,
            conv_layers: 1,
            conv_channels: 2,
            hidden: 5,
            head_hidden: 3,
            mixtures: 2,
            mask: Mask::B,
            cnn_per_attribute: false,
            streams: 0,
            stream_dim: 0,
            stream_rate: false,
        }
    }
}
