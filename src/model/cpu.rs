//! Generation on the CPU without libtorch: the trained network's weights copied into plain
//! arrays, run with `matrixmultiply`'s SIMD kernels and a handful of loops.
//!
//! Why: generation is sequential in rows, so a step is a small batch (one row per live stream)
//! and libtorch's fixed cost per operation (a few µs, a few hundred operations per step) made it
//! the slow path (benches/RESULTS.md, "Generation speed"). Two algebraic rewrites also cut the
//! work per row:
//! - a head's hidden layer is `W·[context, mask ⊙ current]`: the context part of every head is
//!   one matrix product per step, and the current row's part is a sum of per-slot terms, so each
//!   sampled value adds its precomputed row (`W_cur · embedding(value)`, masked per head) to the
//!   later heads' accumulators instead of re-running every head on the whole row;
//! - batch norm (evaluation mode) is folded into the convolution.
//!
//! The torch network (`net.rs`) stays the reference: a test checks both give the same outputs.

use super::net::StanNet;
use super::sample::SampledRow;
use super::spec::{training_stream, HeadSpec};
use crate::codec::time::Clock;
use crate::codec::{restrict_classes, PairMask, ValueRange};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::collections::HashMap;
use tch::{Kind, Tensor};

const BATCH_NORM_EPS: f32 = 1e-5;

enum SlotInput {
    /// A continuous value (clamped to ±20, as in training) at this feature.
    Value { feature: usize },
    /// A class whose embedding fills `dim` features from `start`.
    Embedded {
        start: usize,
        dim: usize,
        classes: usize,
        table: Vec<f32>,
    },
}

/// What one slot's value adds to the later heads' hidden pre-activations.
struct Contribution {
    /// Heads before this column cannot see the slot.
    first_col: usize,
    /// [classes, width] for an embedded slot, [1, width] per unit of value for a continuous one.
    rows: Vec<f32>,
}

struct Conv {
    c_in: usize,
    c_out: usize,
    /// [c_out, c_in, 3, 3], batch norm folded in.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Cnn {
    convs: Vec<Conv>,
    /// Flattened size after the convolutions and the 2×2 max pool.
    flat: usize,
    pooled: bool,
    /// [flat, hidden] (transposed for row-major products).
    context_w: Vec<f32>,
    context_b: Vec<f32>,
}

struct Head {
    slot: usize,
    cnn: usize,
    /// None for a mixture density head.
    classes: Option<usize>,
    outputs: usize,
    /// [head_hidden, outputs].
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    /// 1 for classes that may be sampled.
    allowed: Vec<f32>,
    /// For a value head of an attribute with an own value (`AttributeSpec::own_value`): the
    /// slot of its flag and its place among the value's heads.
    own_part: Option<(usize, usize)>,
}

struct Attribute {
    first_slot: usize,
    slots: usize,
    first_head: usize,
    heads: usize,
    is_null_indicator: bool,
    own_value: bool,
}

pub struct CpuNet {
    k: usize,
    features: usize,
    hidden: usize,
    head_hidden: usize,
    mixtures: usize,
    width: usize,
    slot_inputs: Vec<SlotInput>,
    cnns: Vec<Cnn>,
    heads: Vec<Head>,
    attributes: Vec<Attribute>,
    /// Width of a stream's identity (0: none) and [streams, identity] the identities.
    identity: usize,
    streams: usize,
    identities: Vec<f32>,
    /// [hidden + features + identity, heads × head_hidden]: every head's hidden weights on the
    /// context.
    head_ctx_w: Vec<f32>,
    head_b: Vec<f32>,
    contributions: Vec<Contribution>,
    pairs: Vec<Vec<PairMask>>,
    /// Per slot: the z-scores a value head's draws keep to (`super::draw_within`).
    value_ranges: Vec<ValueRange>,
    /// 0..k: the rows a full convolution computes.
    all_rows: Vec<usize>,
}

fn weight(vars: &HashMap<String, Tensor>, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = vars
        .get(name)
        .ok_or_else(|| Error::CorruptModel(format!("weight \"{name}\" is missing")))?;
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let t = t
        .f_to_device(tch::Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    Ok((Vec::<f32>::try_from(t)?, shape))
}

/// [rows, cols] row-major → [cols, rows].
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

impl CpuNet {
    pub fn from_net(net: &StanNet, pair_masks: &[PairMask]) -> Result<CpuNet> {
        let config = &net.config;
        let vars = net.vs.variables();
        let (k, features) = (config.window, config.feature_width());
        let (hidden, hh) = (config.hidden, config.head_hidden);
        let width = config.slot_width();
        let ranges = config.slot_feature_ranges();
        let offsets = config.slot_offsets();

        let mut slot_inputs = Vec::with_capacity(width);
        let mut heads = Vec::new();
        let mut attributes = Vec::new();
        for (a, attr) in config.attributes.iter().enumerate() {
            attributes.push(Attribute {
                first_slot: offsets[a],
                slots: attr.slots(),
                first_head: heads.len(),
                heads: attr.heads.len(),
                is_null_indicator: attr.is_null_indicator(),
                own_value: attr.own_value,
            });
            for (h, spec) in attr.heads.iter().enumerate() {
                let slot = offsets[a] + h;
                let p = format!("head.a{a}h{h}");
                let (out_w, shape) = weight(&vars, &format!("{p}.out.weight"))?;
                let (out_b, _) = weight(&vars, &format!("{p}.out.bias"))?;
                let outputs = shape[0];
                if outputs != config.head_outputs(a, h) {
                    return Err(Error::CorruptModel(format!("{p}.out is {shape:?}")));
                }
                let (classes, allowed) = match spec {
                    HeadSpec::Mdn => {
                        slot_inputs.push(SlotInput::Value {
                            feature: ranges[slot].0,
                        });
                        (None, vec![])
                    }
                    HeadSpec::Softmax { classes, banned } => {
                        let (table, _) = weight(&vars, &format!("embed.a{a}h{h}.weight"))?;
                        slot_inputs.push(SlotInput::Embedded {
                            start: ranges[slot].0,
                            dim: ranges[slot].1 - ranges[slot].0,
                            classes: *classes,
                            table,
                        });
                        let mut allowed = vec![1f32; *classes];
                        for &c in banned.iter().filter(|&&c| c < *classes) {
                            allowed[c] = 0.0;
                        }
                        (Some(*classes), allowed)
                    }
                };
                heads.push(Head {
                    slot,
                    cnn: if config.cnn_per_attribute { a } else { 0 },
                    classes,
                    outputs,
                    out_w: transpose(&out_w, outputs, hh),
                    out_b,
                    allowed,
                    own_part: (attr.own_value && h > 0).then_some((offsets[a], h - 1)),
                });
            }
            for e in 0..attr.extra_inputs {
                slot_inputs.push(SlotInput::Value {
                    feature: ranges[offsets[a] + attr.heads.len() + e].0,
                });
            }
        }

        let cnn_count = if config.cnn_per_attribute {
            config.attributes.len()
        } else {
            1
        };
        let mut cnns = Vec::with_capacity(cnn_count);
        for i in 0..cnn_count {
            let p = if config.cnn_per_attribute {
                format!("cnn{i}")
            } else {
                "cnn".to_string()
            };
            let mut convs = Vec::new();
            for l in 0..config.conv_layers {
                let (w, shape) = weight(&vars, &format!("{p}.conv{l}.weight"))?;
                let (b, _) = weight(&vars, &format!("{p}.conv{l}.bias"))?;
                let (gamma, _) = weight(&vars, &format!("{p}.bn{l}.weight"))?;
                let (beta, _) = weight(&vars, &format!("{p}.bn{l}.bias"))?;
                let (mean, _) = weight(&vars, &format!("{p}.bn{l}.running_mean"))?;
                let (var, _) = weight(&vars, &format!("{p}.bn{l}.running_var"))?;
                let (c_out, c_in) = (shape[0], shape[1]);
                let mut weight = w;
                let mut bias = vec![0.0; c_out];
                for c in 0..c_out {
                    let scale = gamma[c] / (var[c] + BATCH_NORM_EPS).sqrt();
                    for v in &mut weight[c * c_in * 9..(c + 1) * c_in * 9] {
                        *v *= scale;
                    }
                    bias[c] = (b[c] - mean[c]) * scale + beta[c];
                }
                convs.push(Conv {
                    c_in,
                    c_out,
                    weight,
                    bias,
                });
            }
            let channels = convs.last().map_or(1, |c| c.c_out);
            let pooled = k >= 2 && features >= 2;
            let flat = if pooled {
                channels * (k / 2) * (features / 2)
            } else {
                channels * k * features
            };
            let (cw, shape) = weight(&vars, &format!("{p}.context.weight"))?;
            let (context_b, _) = weight(&vars, &format!("{p}.context.bias"))?;
            if shape != [hidden, flat] {
                return Err(Error::CorruptModel(format!(
                    "{p}.context is {shape:?}, expected [{hidden}, {flat}]"
                )));
            }
            cnns.push(Cnn {
                convs,
                flat,
                pooled,
                context_w: transpose(&cw, hidden, flat),
                context_b,
            });
        }

        let identity = config.identity_width();
        let identities = if identity > 0 {
            let (table, shape) = weight(&vars, "stream.weight")?;
            if shape != [config.streams, identity] {
                return Err(Error::CorruptModel(format!("stream is {shape:?}")));
            }
            table
        } else {
            Vec::new()
        };
        // Every head's hidden layer, split into its context part and its current-row part.
        let cols = heads.len() * hh;
        let ctx_in = hidden + features + identity;
        let mut head_ctx_w = vec![0.0; ctx_in * cols];
        let mut head_b = vec![0.0; cols];
        let mut current_w: Vec<Vec<f32>> = Vec::with_capacity(heads.len()); // [hh, features], masked
        let mut h_index = 0;
        for (a, attr) in config.attributes.iter().enumerate() {
            for h in 0..attr.heads.len() {
                let p = format!("head.a{a}h{h}");
                let (w, shape) = weight(&vars, &format!("{p}.hidden.weight"))?;
                let (b, _) = weight(&vars, &format!("{p}.hidden.bias"))?;
                if shape != [hh, ctx_in + features] {
                    return Err(Error::CorruptModel(format!("{p}.hidden is {shape:?}")));
                }
                let visible = config.visible_features(a, h);
                let mut cur = vec![0.0; hh * features];
                for o in 0..hh {
                    let row = &w[o * (ctx_in + features)..(o + 1) * (ctx_in + features)];
                    for (i, &v) in row[..ctx_in].iter().enumerate() {
                        head_ctx_w[i * cols + h_index * hh + o] = v;
                    }
                    for f in 0..features {
                        if visible[f] {
                            cur[o * features + f] = row[ctx_in + f];
                        }
                    }
                    head_b[h_index * hh + o] = b[o];
                }
                current_w.push(cur);
                h_index += 1;
            }
        }
        let contributions = slot_inputs
            .iter()
            .map(|input| {
                let (start, end) = match input {
                    SlotInput::Value { feature } => (*feature, feature + 1),
                    SlotInput::Embedded { start, dim, .. } => (*start, start + dim),
                };
                let sees = |h: usize| {
                    (0..hh).any(|o| {
                        current_w[h][o * features + start..o * features + end]
                            .iter()
                            .any(|&v| v != 0.0)
                    })
                };
                let first_head = (0..heads.len()).find(|&h| sees(h)).unwrap_or(heads.len());
                let first_col = first_head * hh;
                let w = cols - first_col;
                let rows = match input {
                    SlotInput::Value { feature } => {
                        let mut r = vec![0.0; w];
                        for h in first_head..heads.len() {
                            for o in 0..hh {
                                r[(h - first_head) * hh + o] = current_w[h][o * features + feature];
                            }
                        }
                        r
                    }
                    SlotInput::Embedded {
                        start,
                        dim,
                        classes,
                        table,
                    } => {
                        let mut r = vec![0.0; classes * w];
                        for c in 0..*classes {
                            let e = &table[c * dim..(c + 1) * dim];
                            for h in first_head..heads.len() {
                                for o in 0..hh {
                                    let wrow = &current_w[h][o * features + start..];
                                    r[c * w + (h - first_head) * hh + o] =
                                        e.iter().zip(wrow).map(|(a, b)| a * b).sum();
                                }
                            }
                        }
                        r
                    }
                };
                Contribution { first_col, rows }
            })
            .collect();
        let mut pairs = vec![vec![]; width];
        for m in pair_masks
            .iter()
            .filter(|m| m.slot < width && m.given_slot < m.slot)
        {
            pairs[m.slot].push(m.clone());
        }
        Ok(CpuNet {
            k,
            features,
            hidden,
            head_hidden: hh,
            mixtures: config.mixtures,
            width,
            slot_inputs,
            cnns,
            heads,
            attributes,
            identity,
            streams: config.streams,
            identities,
            head_ctx_w,
            head_b,
            contributions,
            pairs,
            value_ranges: super::ranges_by_slot(width, &[]),
            all_rows: (0..k).collect(),
        })
    }

    /// Value heads draw within these ranges (`super::draw_within`); others are left unbounded.
    pub fn drawing_within(mut self, ranges: &[ValueRange]) -> CpuNet {
        self.value_ranges = super::ranges_by_slot(self.width, ranges);
        self
    }

    /// The identity generated stream `stream` follows (empty without identities).
    fn identity_of(&self, stream: usize) -> &[f32] {
        let row = training_stream(stream, self.streams);
        self.identities
            .get(row * self.identity..(row + 1) * self.identity)
            .unwrap_or(&[])
    }

    /// With one shared CNN of one convolution, each lane keeps its convolution's output: a
    /// step slides the window by one row, so only the rows next to the window's ends change.
    pub fn keeps_activations(&self) -> bool {
        self.cnns.len() == 1 && self.cnns[0].convs.len() == 1
    }

    /// Bytes a lane needs to keep its convolution output.
    pub fn activation_bytes(&self) -> usize {
        self.cnns[0].convs.first().map_or(0, |c| c.c_out) * self.k * self.features * 4
    }

    /// A row's input features (what the window holds for it).
    pub fn embed_row(&self, slots: &[f32], out: &mut [f32]) {
        for (s, input) in self.slot_inputs.iter().enumerate() {
            match input {
                SlotInput::Value { feature } => out[*feature] = slots[s].clamp(-20.0, 20.0),
                SlotInput::Embedded {
                    start,
                    dim,
                    classes,
                    table,
                } => {
                    let c = class_of(slots[s], *classes);
                    out[*start..start + dim].copy_from_slice(&table[c * dim..(c + 1) * dim]);
                }
            }
        }
    }

    /// Adds `sign` × slot `s`'s contribution for `value` to one row of accumulators.
    fn contribute(&self, s: usize, value: f32, sign: f32, acc_row: &mut [f32]) {
        let c = &self.contributions[s];
        let w = acc_row.len() - c.first_col;
        if w == 0 {
            return;
        }
        let target = &mut acc_row[c.first_col..];
        match &self.slot_inputs[s] {
            SlotInput::Value { .. } => {
                let v = value.clamp(-20.0, 20.0) * sign;
                if v != 0.0 {
                    axpy(v, &c.rows, target);
                }
            }
            SlotInput::Embedded { classes, .. } => {
                let r = class_of(value, *classes);
                axpy(sign, &c.rows[r * w..(r + 1) * w], target);
            }
        }
    }

    /// Runs the network for `b` rows whose windows are `windows[r]` ([k, features], invalid
    /// rows zero) and, when the net keeps them (`keeps_activations`), whose convolution outputs
    /// are `activations[r]`. `policy` chooses each head's value from its raw output and may
    /// rewrite an attribute's slots once all its heads are chosen; `current` ([b, slots])
    /// receives the rows.
    pub fn forward(
        &self,
        scratch: &mut Scratch,
        windows: &[&[f32]],
        identities: &[&[f32]],
        activations: Option<&[&[f32]]>,
        current: &mut [f32],
        policy: &mut dyn Policy,
    ) {
        let b = windows.len();
        let (k, f, hidden, hh) = (self.k, self.features, self.hidden, self.head_hidden);
        let cols = self.heads.len() * hh;
        let ctx_in = hidden + f + self.identity;
        scratch.acc.resize(b * cols, 0.0);
        scratch.ctx.resize(b * ctx_in, 0.0);
        for (ci, cnn) in self.cnns.iter().enumerate() {
            scratch.flat.resize(b * cnn.flat, 0.0);
            for r in 0..b {
                let flat = &mut scratch.flat[r * cnn.flat..(r + 1) * cnn.flat];
                match activations {
                    Some(acts) if self.keeps_activations() => {
                        pool_flatten(cnn, k, f, cnn.convs[0].c_out, acts[r], flat)
                    }
                    _ => cnn_features(
                        cnn,
                        k,
                        f,
                        &self.all_rows,
                        windows[r],
                        &mut scratch.conv_a,
                        &mut scratch.conv_b,
                        flat,
                    ),
                }
            }
            // ctx = [relu(flat · W + b), the most recent row, the stream's identity]
            for (r, ctx) in scratch.ctx.chunks_exact_mut(ctx_in).enumerate() {
                ctx[..hidden].copy_from_slice(&cnn.context_b);
                ctx[hidden..hidden + f].copy_from_slice(&windows[r][(k - 1) * f..k * f]);
                ctx[hidden + f..].copy_from_slice(identities[r]);
            }
            matmul(
                b,
                cnn.flat,
                hidden,
                &scratch.flat,
                cnn.flat,
                &cnn.context_w,
                hidden,
                &mut scratch.ctx,
                ctx_in,
            );
            for r in 0..b {
                for v in &mut scratch.ctx[r * ctx_in..r * ctx_in + hidden] {
                    *v = v.max(0.0);
                }
            }
            // The heads that read this CNN: a contiguous run of columns.
            let heads: Vec<usize> = (0..self.heads.len())
                .filter(|&h| self.heads[h].cnn == ci)
                .collect();
            let (Some(&first), Some(&last)) = (heads.first(), heads.last()) else {
                continue;
            };
            let (c0, c1) = (first * hh, (last + 1) * hh);
            for r in 0..b {
                scratch.acc[r * cols + c0..r * cols + c1].copy_from_slice(&self.head_b[c0..c1]);
            }
            matmul(
                b,
                ctx_in,
                c1 - c0,
                &scratch.ctx,
                ctx_in,
                &self.head_ctx_w[c0..],
                cols,
                &mut scratch.acc[c0..],
                cols,
            );
        }

        let width = self.width;
        current[..b * width].fill(0.0);
        for (a, attr) in self.attributes.iter().enumerate() {
            for h in attr.first_head..attr.first_head + attr.heads {
                let head = &self.heads[h];
                scratch.x.resize(b * hh, 0.0);
                for r in 0..b {
                    for (x, &v) in scratch.x[r * hh..(r + 1) * hh]
                        .iter_mut()
                        .zip(&scratch.acc[r * cols + h * hh..r * cols + (h + 1) * hh])
                    {
                        *x = v.max(0.0);
                    }
                }
                scratch.out.resize(b * head.outputs, 0.0);
                for r in 0..b {
                    scratch.out[r * head.outputs..(r + 1) * head.outputs]
                        .copy_from_slice(&head.out_b);
                }
                matmul(
                    b,
                    hh,
                    head.outputs,
                    &scratch.x,
                    hh,
                    &head.out_w,
                    head.outputs,
                    &mut scratch.out,
                    head.outputs,
                );
                for r in 0..b {
                    let out = &scratch.out[r * head.outputs..(r + 1) * head.outputs];
                    let row = &current[r * width..(r + 1) * width];
                    let value = policy.choose(self, r, h, out, row);
                    current[r * width + head.slot] = value;
                    self.contribute(
                        head.slot,
                        value,
                        1.0,
                        &mut scratch.acc[r * cols..(r + 1) * cols],
                    );
                }
            }
            let slots = attr.first_slot..attr.first_slot + attr.slots;
            for r in 0..b {
                let row = &mut current[r * width..(r + 1) * width];
                scratch.before.clear();
                scratch.before.extend_from_slice(&row[slots.clone()]);
                policy.settle(a, r, row);
                for (i, s) in slots.clone().enumerate() {
                    if row[s] != scratch.before[i] {
                        let acc = &mut scratch.acc[r * cols..(r + 1) * cols];
                        self.contribute(s, scratch.before[i], -1.0, acc);
                        self.contribute(s, row[s], 1.0, acc);
                    }
                }
            }
        }
    }
}

/// Chooses values during `CpuNet::forward`.
pub trait Policy {
    /// The value of head `h` (of slot `net.heads[h].slot`) for row `r`, given the head's raw
    /// output and the row so far.
    fn choose(&mut self, net: &CpuNet, r: usize, h: usize, out: &[f32], row: &[f32]) -> f32;
    /// Called after attribute `a`'s heads for row `r`; may rewrite that attribute's slots.
    fn settle(&mut self, a: usize, r: usize, row: &mut [f32]);
}

/// Buffers reused between steps.
#[derive(Default)]
pub struct Scratch {
    acc: Vec<f32>,
    ctx: Vec<f32>,
    flat: Vec<f32>,
    conv_a: Vec<f32>,
    conv_b: Vec<f32>,
    x: Vec<f32>,
    out: Vec<f32>,
    before: Vec<f32>,
}

fn class_of(value: f32, classes: usize) -> usize {
    // As torch's `to_kind(Int64).clamp(0, classes - 1)`: truncation toward zero.
    (value as i64).clamp(0, classes as i64 - 1) as usize
}

/// Output rows `rows` of a 3×3 convolution (zero padding 1) with its bias and ReLU:
/// input [c_in, k, f] → out [c_out, k, f]; other rows of `out` are left as they are.
fn conv_rows(conv: &Conv, k: usize, f: usize, input: &[f32], out: &mut [f32], rows: &[usize]) {
    for co in 0..conv.c_out {
        let out = &mut out[co * k * f..(co + 1) * k * f];
        for &i in rows {
            out[i * f..(i + 1) * f].fill(conv.bias[co]);
        }
        for ci in 0..conv.c_in {
            let input = &input[ci * k * f..(ci + 1) * k * f];
            for di in 0..3 {
                for dj in 0..3 {
                    let w = conv.weight[((co * conv.c_in + ci) * 3 + di) * 3 + dj];
                    for &i in rows {
                        // Input row i + di - 1, column j + dj - 1, zero outside.
                        let src_row = i + di;
                        if src_row < 1 || src_row > k {
                            continue;
                        }
                        let src = &input[(src_row - 1) * f..src_row * f];
                        let dst = &mut out[i * f..(i + 1) * f];
                        match dj {
                            0 => axpy(w, &src[..f - 1], &mut dst[1..]),
                            1 => axpy(w, src, dst),
                            _ => axpy(w, &src[1..], &mut dst[..f - 1]),
                        }
                    }
                }
            }
        }
        for &i in rows {
            for v in &mut out[i * f..(i + 1) * f] {
                *v = v.max(0.0);
            }
        }
    }
}

/// 2×2 max pool (when the CNN pools) and flatten: [channels, k, f] → `flat`.
fn pool_flatten(cnn: &Cnn, k: usize, f: usize, channels: usize, a: &[f32], flat: &mut [f32]) {
    if !cnn.pooled {
        flat.copy_from_slice(&a[..channels * k * f]);
        return;
    }
    let (ph, pw) = (k / 2, f / 2);
    let mut rows = [0f32; 512];
    for c in 0..channels {
        let m = &a[c * k * f..(c + 1) * k * f];
        for i in 0..ph {
            let (top, bottom) = (
                &m[2 * i * f..2 * i * f + f],
                &m[(2 * i + 1) * f..(2 * i + 2) * f],
            );
            let out = &mut flat[(c * ph + i) * pw..(c * ph + i + 1) * pw];
            if f <= rows.len() {
                // Rows first (contiguous, vectorises), then neighbouring pairs.
                for ((r, &t), &b) in rows.iter_mut().zip(top).zip(bottom) {
                    *r = if t > b { t } else { b };
                }
                for (j, o) in out.iter_mut().enumerate() {
                    let (x, y) = (rows[2 * j], rows[2 * j + 1]);
                    *o = if x > y { x } else { y };
                }
            } else {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = top[2 * j]
                        .max(top[2 * j + 1])
                        .max(bottom[2 * j])
                        .max(bottom[2 * j + 1]);
                }
            }
        }
    }
}

/// One window → the CNN's flattened, pooled activations.
/// `all_rows` is 0..k.
#[allow(clippy::too_many_arguments)]
fn cnn_features(
    cnn: &Cnn,
    k: usize,
    f: usize,
    all_rows: &[usize],
    win: &[f32],
    a: &mut Vec<f32>,
    b: &mut Vec<f32>,
    flat: &mut [f32],
) {
    a.clear();
    a.extend_from_slice(win);
    let mut channels = 1;
    for conv in &cnn.convs {
        b.clear();
        b.resize(conv.c_out * k * f, 0.0);
        conv_rows(conv, k, f, a, b, all_rows);
        std::mem::swap(a, b);
        channels = conv.c_out;
    }
    pool_flatten(cnn, k, f, channels, a, flat);
}

/// y += alpha · x
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { axpy_avx2(alpha, x, y) };
        return;
    }
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = alpha.mul_add(*x, *y);
    }
}

/// c[m, n] += a[m, kk] · b[kk, n], row-major with leading dimensions lda, ldb, ldc.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    kk: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || kk == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + kk && lda >= kk);
    assert!(b.len() >= (kk - 1) * ldb + n && ldb >= n);
    assert!(c.len() >= (m - 1) * ldc + n && ldc >= n);
    if m < 4 {
        // A few rows: packing the weights would cost more than the product itself.
        for r in 0..m {
            let cr = &mut c[r * ldc..r * ldc + n];
            for (i, &x) in a[r * lda..r * lda + kk].iter().enumerate() {
                if x != 0.0 {
                    axpy(x, &b[i * ldb..i * ldb + n], cr);
                }
            }
        }
        return;
    }
    // SAFETY: the assertions above keep every index the kernel touches inside the slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            kk,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            ldb as isize,
            1,
            1.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// Draws a class from a head's logits, only among allowed classes.
pub fn sample_logits(logits: &[f32], allowed: &[f32], rng: &mut impl Rng) -> usize {
    let max = allowed_max(logits, allowed);
    if !max.is_finite() {
        let open: Vec<usize> = (0..logits.len()).filter(|&i| allowed[i] > 0.0).collect();
        return open
            .get(rng.random_range(0..open.len().max(1)))
            .copied()
            .unwrap_or(0);
    }
    WEIGHTS.with_borrow_mut(|weights| {
        weights.resize(logits.len(), 0.0);
        let total = exp_weights(logits, allowed, max, weights);
        let mut u = rng.random::<f32>() * total;
        // Skip whole blocks of eight, then walk the block the draw falls in.
        let mut base = 0;
        for block in weights.chunks(8) {
            let sum: f32 = block.iter().sum();
            if u < sum {
                break;
            }
            u -= sum;
            base += block.len();
        }
        for (i, &w) in weights.iter().enumerate().skip(base) {
            if w > 0.0 {
                if u < w {
                    return i;
                }
                u -= w;
            }
        }
        // Rounding left the draw past the end: the last class with weight.
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    })
}

/// The largest logit among allowed classes (−∞ when none is allowed).
fn allowed_max(logits: &[f32], allowed: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { allowed_max_avx2(logits, allowed) };
    }
    allowed_max_portable(logits, allowed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn allowed_max_avx2(logits: &[f32], allowed: &[f32]) -> f32 {
    allowed_max_portable(logits, allowed)
}

#[inline(always)]
fn allowed_max_portable(logits: &[f32], allowed: &[f32]) -> f32 {
    // Compare-and-select (not f32::max, whose NaN rule keeps the loop scalar); NaN never wins.
    let mut partial = [f32::NEG_INFINITY; 8];
    for (l, a) in logits.chunks_exact(8).zip(allowed.chunks_exact(8)) {
        for j in 0..8 {
            let v = if a[j] > 0.0 { l[j] } else { f32::NEG_INFINITY };
            partial[j] = if v > partial[j] { v } else { partial[j] };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for p in partial {
        max = if p > max { p } else { max };
    }
    for i in logits.len() - logits.len() % 8..logits.len() {
        if allowed[i] > 0.0 && logits[i] > max {
            max = logits[i];
        }
    }
    max
}

thread_local! {
    static WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// weights[i] = allowed[i] · e^(logits[i] - max); returns their sum.
fn exp_weights(logits: &[f32], allowed: &[f32], max: f32, weights: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { exp_weights_avx2(logits, allowed, max, weights) };
    }
    exp_weights_portable(logits, allowed, max, weights)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_weights_avx2(logits: &[f32], allowed: &[f32], max: f32, weights: &mut [f32]) -> f32 {
    exp_weights_portable(logits, allowed, max, weights)
}

#[inline(always)]
fn exp_weights_portable(logits: &[f32], allowed: &[f32], max: f32, weights: &mut [f32]) -> f32 {
    for ((w, &l), &a) in weights.iter_mut().zip(logits).zip(allowed) {
        *w = fast_exp(l - max) * a;
    }
    // Eight partial sums: a single running sum would keep the loop from vectorising.
    let mut partial = [0f32; 8];
    let chunks = weights.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (p, &w) in partial.iter_mut().zip(c) {
            *p += w;
        }
    }
    partial.iter().sum::<f32>() + rest
}

/// e^x for x ≤ 0 within 1e-5 relative, in a form compilers vectorise (2^n through the exponent
/// bits, 2^f by Cephes' exp2f polynomial for f in [-0.5, 0.5]); below e^-87 it is about 1e-38.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let t = (x * std::f32::consts::LOG2_E).max(-126.0);
    let n = (t + 0.5).floor();
    let f = t - n;
    let p = 1.535_336_2e-4_f32;
    let p = p.mul_add(f, 1.339_887_4e-3);
    let p = p.mul_add(f, 9.618_437e-3);
    let p = p.mul_add(f, 5.550_332_5e-2);
    let p = p.mul_add(f, 0.240_226_5);
    let p = p.mul_add(f, std::f32::consts::LN_2);
    let p = p.mul_add(f, 1.0);
    // n + 1.5·2^23 holds n in its low mantissa bits: an integer without a float→int cast.
    const MAGIC: f32 = 12_582_912.0;
    let n_bits = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// One generated sequence: a stream, or a segment of one.
pub struct Lane {
    pub stream: usize,
    /// [k, features], oldest first; rows before the sequence began are zero.
    window: Vec<f32>,
    /// The convolution's output for `window`, [channels, k, features], when the net keeps it.
    activations: Vec<f32>,
    state: LaneState,
    /// The lane ends when its clock passes this (seconds since the generation's start).
    pub end: f64,
}

/// What sampling a row changes besides the window.
struct LaneState {
    rng: ChaCha8Rng,
    /// Seconds since the generation's start.
    clock: f64,
    /// The stream's own value (its address's octets), given or once drawn; empty before.
    own: Vec<f32>,
    /// The gap head's largest z-score for this stream (`super::capped_gap`).
    max_gap_z: f32,
}

impl Lane {
    /// The stream keeps this own value (`AttributeSpec::own_value`) from its first row.
    pub fn keeping(mut self, own: Vec<f32>) -> Lane {
        self.state.own = own;
        self
    }

    /// The stream waits no longer than this gap z-score (`super::capped_gap`).
    pub fn waiting_at_most(mut self, max_gap_z: f32) -> Lane {
        self.state.max_gap_z = max_gap_z;
        self
    }

    /// `keep_activations`: keep the convolution's output between steps (faster; costs
    /// channels × k × features floats per lane), when the net allows it.
    pub fn new(
        net: &CpuNet,
        stream: usize,
        clock: f64,
        end: f64,
        seed: u64,
        keep_activations: bool,
    ) -> Lane {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream as u64);
        let window = vec![0.0; net.k * net.features];
        let mut activations = Vec::new();
        if keep_activations && net.keeps_activations() {
            let conv = &net.cnns[0].convs[0];
            activations = vec![0.0; conv.c_out * net.k * net.features];
            conv_rows(
                conv,
                net.k,
                net.features,
                &window,
                &mut activations,
                &net.all_rows,
            );
        }
        Lane {
            stream,
            window,
            activations,
            state: LaneState {
                rng,
                clock,
                own: Vec::new(),
                max_gap_z: f32::INFINITY,
            },
            end,
        }
    }
}

/// The sampling policy for a batch of lanes (paper Algorithm 2).
struct Sampling<'a> {
    net: &'a CpuNet,
    lanes: Vec<&'a mut LaneState>,
    start: f64,
    gap_seconds: &'a (dyn Fn(f32) -> f64 + Sync),
    time_of_day: Clock,
    null_value: Vec<bool>,
    masked: Vec<f32>,
}

static ONES: [f32; 64] = [1.0; 64];

impl Policy for Sampling<'_> {
    fn choose(&mut self, net: &CpuNet, r: usize, h: usize, out: &[f32], row: &[f32]) -> f32 {
        let head = &net.heads[h];
        if let Some((flag, i)) = head.own_part {
            if let Some(&kept) = self.lanes[r].own.get(i).filter(|_| row[flag] >= 0.5) {
                return kept;
            }
        }
        // Head 0 is the order attribute's gap head (the order column comes first).
        let max = if h == 0 {
            self.lanes[r].max_gap_z
        } else {
            f32::INFINITY
        };
        let rng = &mut self.lanes[r].rng;
        match head.classes {
            None => {
                let m = net.mixtures;
                let range = &net.value_ranges[head.slot];
                let z = super::draw_within(range, || {
                    let c = sample_logits(&out[..m], &ONES[..m], rng);
                    let z: f32 = rng.sample(StandardNormal);
                    let sd = out[2 * m + c].clamp(-7.0, 5.0).exp();
                    out[m + c] + sd * z
                });
                super::capped_gap(z, max)
            }
            Some(_) => {
                let restricted = restrict_classes(
                    &net.pairs[head.slot],
                    |given| row[given] as u32,
                    &head.allowed,
                    &mut self.masked,
                );
                let allowed: &[f32] = if restricted {
                    &self.masked
                } else {
                    &head.allowed
                };
                sample_logits(out, allowed, rng) as f32
            }
        }
    }

    fn settle(&mut self, a: usize, r: usize, row: &mut [f32]) {
        let attr = &self.net.attributes[a];
        if attr.is_null_indicator {
            self.null_value[r] = row[attr.first_slot] >= 0.5;
        } else {
            if self.null_value[r] {
                // A NULL value is encoded as zeros, as in training.
                row[attr.first_slot..attr.first_slot + attr.slots].fill(0.0);
            }
            self.null_value[r] = false;
            // A stream given no own value keeps the first it draws.
            if attr.own_value && row[attr.first_slot] >= 0.5 && self.lanes[r].own.is_empty() {
                let value = &row[attr.first_slot + 1..attr.first_slot + attr.slots];
                self.lanes[r].own.extend_from_slice(value);
            }
        }
        if a == 0 {
            // The order attribute: advance the clock, then add time of day.
            let lane = &mut self.lanes[r];
            lane.clock += (self.gap_seconds)(row[0]);
            row[1..3].copy_from_slice(&self.time_of_day.features(self.start + lane.clock));
        }
    }
}

/// One step for every lane given: samples a row each, slides the windows, and returns the rows
/// whose time is within their lane's end (a lane past its end is finished: `clock > end`).
pub fn step_lanes(
    net: &CpuNet,
    scratch: &mut Scratch,
    lanes: &mut [Lane],
    start: f64,
    gap_seconds: &(dyn Fn(f32) -> f64 + Sync),
    time_of_day: Clock,
) -> Vec<SampledRow> {
    let (b, k, f, width) = (lanes.len(), net.k, net.features, net.width);
    let keeps = net.keeps_activations() && lanes.iter().all(|l| !l.activations.is_empty());
    let mut current = vec![0f32; b * width];
    {
        let (mut windows, mut identities) = (vec![], vec![]);
        let (mut activations, mut states) = (vec![], vec![]);
        for lane in lanes.iter_mut() {
            windows.push(lane.window.as_slice());
            identities.push(net.identity_of(lane.stream));
            activations.push(lane.activations.as_slice());
            states.push(&mut lane.state);
        }
        let mut policy = Sampling {
            net,
            lanes: states,
            start,
            gap_seconds,
            time_of_day,
            null_value: vec![false; b],
            masked: Vec::new(),
        };
        let acts = keeps.then_some(activations.as_slice());
        net.forward(
            scratch,
            &windows,
            &identities,
            acts,
            &mut current,
            &mut policy,
        );
    }
    // Row 0 lost its upper neighbour, rows k-2 and k-1 gained the new row.
    let mut changed = vec![0, k.saturating_sub(2), k - 1];
    changed.dedup();
    let mut rows = Vec::with_capacity(b);
    for (i, lane) in lanes.iter_mut().enumerate() {
        if lane.state.clock > lane.end {
            continue;
        }
        let row = &current[i * width..(i + 1) * width];
        lane.window.copy_within(f.., 0);
        net.embed_row(row, &mut lane.window[(k - 1) * f..]);
        if keeps {
            let conv = &net.cnns[0].convs[0];
            for c in 0..conv.c_out {
                lane.activations[c * k * f..(c + 1) * k * f].copy_within(f.., 0);
            }
            conv_rows(conv, k, f, &lane.window, &mut lane.activations, &changed);
        }
        rows.push(SampledRow {
            stream: lane.stream,
            slots: row.to_vec(),
            epoch: start + lane.state.clock,
        });
    }
    rows
}

/// Generation on the CPU: lanes step together, split across threads; finished lanes drop out
/// of the batch so every step's work is proportional to the rows it produces.
pub struct CpuSampler {
    net: CpuNet,
    lanes: Vec<Lane>,
    scratches: Vec<Scratch>,
    threads: usize,
    start: f64,
    gap_seconds: Box<dyn Fn(f32) -> f64 + Send + Sync>,
    time_of_day: Clock,
}

/// Below this many lanes per thread a step runs on one thread (spawning would cost more).
const LANES_PER_THREAD: usize = 24;

impl CpuSampler {
    pub fn new(
        net: CpuNet,
        lanes: Vec<Lane>,
        threads: usize,
        start: f64,
        gap_seconds: Box<dyn Fn(f32) -> f64 + Send + Sync>,
        time_of_day: Clock,
    ) -> CpuSampler {
        let threads = threads.max(1);
        CpuSampler {
            net,
            lanes,
            scratches: (0..threads).map(|_| Scratch::default()).collect(),
            threads,
            start,
            gap_seconds,
            time_of_day,
        }
    }

    pub fn finished(&self) -> bool {
        self.lanes.is_empty()
    }

    /// One row for every live lane, as (stream, slots, epoch); lanes past their end stop.
    pub fn step(&mut self) -> Vec<SampledRow> {
        let n = self.lanes.len();
        let threads = self.threads.min(n / LANES_PER_THREAD).max(1);
        let (net, start, gap, clock) =
            (&self.net, self.start, &*self.gap_seconds, self.time_of_day);
        let rows = if threads == 1 {
            step_lanes(
                net,
                &mut self.scratches[0],
                &mut self.lanes,
                start,
                gap,
                clock,
            )
        } else {
            let chunk = n.div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .lanes
                    .chunks_mut(chunk)
                    .zip(self.scratches.iter_mut())
                    .map(|(lanes, scratch)| {
                        scope.spawn(move || step_lanes(net, scratch, lanes, start, gap, clock))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("a generation thread panicked"))
                    .collect()
            })
        };
        self.lanes.retain(|l| l.state.clock <= l.end);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::fixtures::{
        assert_drawn_within, assert_own_values_kept, categorical, fixed_mixture_net, numeric,
        order, small_config, tally_capped_gaps,
    };
    use crate::model::{AttributeSpec, ModelConfig};
    use tch::Device;

    fn config(cnn_per_attribute: bool, conv_layers: usize) -> ModelConfig {
        let attributes = vec![
            order(),
            categorical("sa", &[7, 5]),
            categorical("da", &[7, 5]),
            categorical("byt:null", &[2]),
            numeric("byt"),
            categorical("pr", &[3]),
        ];
        ModelConfig {
            conv_layers,
            conv_channels: 3,
            mixtures: 3,
            cnn_per_attribute,
            streams: 4,
            stream_dim: 3,
            ..small_config(attributes, 5)
        }
    }

    /// Replays given rows (teacher forcing) and records every head's output.
    struct Replay {
        rows: Vec<Vec<f32>>,
        outputs: Vec<Vec<Vec<f32>>>,
    }
    impl Policy for Replay {
        fn choose(&mut self, net: &CpuNet, r: usize, h: usize, out: &[f32], _: &[f32]) -> f32 {
            self.outputs[r][h] = out.to_vec();
            self.rows[r][net.heads[h].slot]
        }
        fn settle(&mut self, _: usize, r: usize, row: &mut [f32]) {
            row.copy_from_slice(&self.rows[r]);
        }
    }

    /// The CPU engine computes what the torch network computes, for every head, with batch norm
    /// statistics that are not the identity, with and without a CNN per attribute.
    #[test]
    fn cpu_engine_matches_the_torch_network() {
        for (per_attribute, layers) in [(false, 1), (true, 2), (false, 0)] {
            tch::manual_seed(7);
            let cfg = config(per_attribute, layers);
            let net = StanNet::new(cfg.clone(), Device::Cpu);
            tch::no_grad(|| {
                for (name, var) in net.vs.variables() {
                    if name.ends_with("running_mean") || name.ends_with("running_var") {
                        var.shallow_clone().copy_(&(Tensor::rand_like(&var) + 0.5));
                    }
                }
            });
            let cpu = CpuNet::from_net(&net, &[]).unwrap();
            let (b, k, width) = (6usize, cfg.window, cfg.slot_width());
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let random_row = |rng: &mut ChaCha8Rng| -> Vec<f32> {
                vec![
                    rng.random_range(-2.0..2.0),
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                    rng.random_range(0..7) as f32,
                    rng.random_range(0..5) as f32,
                    rng.random_range(0..7) as f32,
                    rng.random_range(0..5) as f32,
                    rng.random_range(0..2) as f32,
                    rng.random_range(-3.0..3.0),
                    rng.random_range(0..3) as f32,
                ]
            };
            let mut window_slots = vec![0f32; b * k * width];
            let mut valid = vec![0f32; b * k];
            let mut windows = vec![0f32; b * k * cpu.features];
            for r in 0..b {
                for i in 0..k {
                    // Row r has r valid rows (the others are padding, as at a stream's start).
                    if k - i <= r {
                        let row = random_row(&mut rng);
                        window_slots[(r * k + i) * width..(r * k + i + 1) * width]
                            .copy_from_slice(&row);
                        valid[r * k + i] = 1.0;
                        let off = (r * k + i) * cpu.features;
                        cpu.embed_row(&row, &mut windows[off..off + cpu.features]);
                    }
                }
            }
            let rows: Vec<Vec<f32>> = (0..b).map(|_| random_row(&mut rng)).collect();
            let mut replay = Replay {
                rows: rows.clone(),
                outputs: vec![vec![vec![]; cpu.heads.len()]; b],
            };
            let mut current = vec![0f32; b * width];
            let window_rows: Vec<&[f32]> = windows.chunks(k * cpu.features).collect();
            // Row r follows training stream r mod 4.
            let identities: Vec<&[f32]> = (0..b).map(|r| cpu.identity_of(r)).collect();
            assert!(identities.iter().all(|i| i.len() == 3));
            cpu.forward(
                &mut Scratch::default(),
                &window_rows,
                &identities,
                None,
                &mut current,
                &mut replay,
            );
            if cpu.keeps_activations() {
                // Given the convolution's output instead of computing it: the same outputs.
                let conv = &cpu.cnns[0].convs[0];
                let all: Vec<usize> = (0..k).collect();
                let acts: Vec<Vec<f32>> = window_rows
                    .iter()
                    .map(|w| {
                        let mut a = vec![0.0; conv.c_out * k * cpu.features];
                        conv_rows(conv, k, cpu.features, w, &mut a, &all);
                        a
                    })
                    .collect();
                let act_rows: Vec<&[f32]> = acts.iter().map(|a| a.as_slice()).collect();
                let first = replay.outputs.clone();
                cpu.forward(
                    &mut Scratch::default(),
                    &window_rows,
                    &identities,
                    Some(&act_rows),
                    &mut current,
                    &mut replay,
                );
                assert_eq!(first, replay.outputs);
            }

            let w = Tensor::from_slice(&window_slots).view([b as i64, k as i64, width as i64]);
            let v = Tensor::from_slice(&valid).view([b as i64, k as i64]);
            let cur = Tensor::from_slice(&rows.concat()).view([b as i64, width as i64]);
            tch::no_grad(|| {
                let streams: Vec<i64> = (0..b).map(|r| cfg.identity_of(r) as i64).collect();
                let contexts = net.context(&w, &v, &Tensor::from_slice(&streams), false);
                let features = net.embed(&cur);
                let mut h = 0;
                for (a, attr) in cfg.attributes.iter().enumerate() {
                    for hi in 0..attr.heads.len() {
                        let out = net.head_output(a, hi, &contexts, &features);
                        let expected: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
                        let n = expected.len() / b;
                        for r in 0..b {
                            for j in 0..n {
                                let (e, g) = (expected[r * n + j], replay.outputs[r][h][j]);
                                assert!(
                                    (e - g).abs() < 1e-4 * (1.0 + e.abs()),
                                    "layers {layers}, per attribute {per_attribute}: head {h} row {r} output {j}: torch {e}, cpu {g}"
                                );
                            }
                        }
                        h += 1;
                    }
                }
            });
        }
    }

    /// A lane's kept convolution output, updated row by row as the window slides, is the
    /// convolution of its window.
    #[test]
    fn kept_activations_follow_the_window() {
        tch::manual_seed(5);
        let cfg = config(false, 1);
        let net = StanNet::new(cfg.clone(), Device::Cpu);
        let cpu = CpuNet::from_net(&net, &[]).unwrap();
        assert!(cpu.keeps_activations());
        let mut lanes: Vec<Lane> = (0..5)
            .map(|s| Lane::new(&cpu, s, 0.0, 1e9, 9, true))
            .collect();
        let mut recomputing: Vec<Lane> = (0..5)
            .map(|s| Lane::new(&cpu, s, 0.0, 1e9, 9, false))
            .collect();
        let mut scratch = Scratch::default();
        let gap = |_: f32| 1.0;
        let mut produced = 0;
        for _ in 0..(cfg.window * 3) {
            let kept = step_lanes(&cpu, &mut scratch, &mut lanes, 0.0, &gap, Clock::DAILY);
            let recomputed = step_lanes(
                &cpu,
                &mut scratch,
                &mut recomputing,
                0.0,
                &gap,
                Clock::DAILY,
            );
            // Keeping the convolution output changes nothing but the work.
            assert_eq!(kept.len(), recomputed.len());
            for (a, b) in kept.iter().zip(&recomputed) {
                assert_eq!(a.slots, b.slots);
            }
            produced += kept.len();
        }
        assert_eq!(produced, 5 * cfg.window * 3);
        assert!(recomputing.iter().all(|l| l.activations.is_empty()));
        let (k, f) = (cfg.window, cpu.features);
        let conv = &cpu.cnns[0].convs[0];
        let all: Vec<usize> = (0..k).collect();
        for lane in &lanes {
            let mut full = vec![0.0; conv.c_out * k * f];
            conv_rows(conv, k, f, &lane.window, &mut full, &all);
            for (a, b) in full.iter().zip(&lane.activations) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            assert!(lane.window.iter().any(|&v| v != 0.0));
        }
    }

    /// A CPU network over the time and one three-valued category, with a 4-row window.
    fn time_and_protocol() -> CpuNet {
        let net = StanNet::new(
            small_config(vec![order(), categorical("pr", &[3])], 4),
            Device::Cpu,
        );
        CpuNet::from_net(&net, &[]).unwrap()
    }

    /// Each generated row carries the time of day of the model's clock at its own time.
    #[test]
    fn rows_carry_the_time_of_day_of_the_models_clock() {
        let cpu = time_and_protocol();
        let clock = Clock {
            period: 2.0 * 86_400.0,
            origin: 0.0,
        };
        let mut lanes = vec![Lane::new(&cpu, 0, 0.0, 1e9, 5, true)];
        let mut scratch = Scratch::default();
        for step in 1..=30 {
            let rows = step_lanes(
                &cpu,
                &mut scratch,
                &mut lanes,
                0.0,
                &|_: f32| 3_600.0,
                clock,
            );
            assert_eq!(rows.len(), 1, "step {step}");
            assert_eq!(rows[0].epoch, step as f64 * 3_600.0);
            assert_eq!(
                rows[0].slots[1..3],
                clock.features(rows[0].epoch),
                "step {step}"
            );
        }
    }

    /// A bounded stream's gaps stay within its bound, while an unbounded stream of the same
    /// network draws beyond it.
    #[test]
    fn a_stream_waits_no_longer_than_its_bound() {
        tch::manual_seed(4);
        let cpu = time_and_protocol();
        let bound = -0.5;
        let mut lanes = vec![
            Lane::new(&cpu, 0, 0.0, 1e9, 5, true).waiting_at_most(bound),
            Lane::new(&cpu, 1, 0.0, 1e9, 5, true),
        ];
        let mut scratch = Scratch::default();
        let mut tally = (0, 0);
        for _ in 0..200 {
            let rows = step_lanes(
                &cpu,
                &mut scratch,
                &mut lanes,
                0.0,
                &|_: f32| 1.0,
                Clock::DAILY,
            );
            tally_capped_gaps(
                rows.iter().map(|r| (r.stream, r.slots[0])),
                bound,
                &mut tally,
            );
        }
        let (bounded, beyond) = tally;
        assert_eq!(bounded, 200);
        assert!(
            beyond > 20,
            "the unbounded stream drew {beyond} of 200 gaps above the bound"
        );
    }

    /// Value heads keep to their column's training range (`super::draw_within`), while the
    /// same network without ranges draws outside it.
    #[test]
    fn values_are_drawn_within_their_training_range() {
        let net = fixed_mixture_net(4);
        // The gap's three slots, then the duration's.
        let range = ValueRange {
            slot: 3,
            low: -1.5,
            high: 3.5,
            ..ValueRange::unbounded(3)
        };
        let draws = |cpu: &CpuNet| -> Vec<f32> {
            let mut lanes = vec![Lane::new(cpu, 0, 0.0, 1e9, 7, true)];
            let mut scratch = Scratch::default();
            (0..400)
                .flat_map(|_| {
                    step_lanes(
                        cpu,
                        &mut scratch,
                        &mut lanes,
                        0.0,
                        &|_: f32| 1.0,
                        Clock::DAILY,
                    )
                })
                .map(|row| row.slots[3])
                .collect()
        };
        let cpu = CpuNet::from_net(&net, &[]).unwrap();
        let unbounded = draws(&cpu);
        let bounded = draws(&cpu.drawing_within(&[range]));
        assert_eq!(bounded.len(), 400);
        assert_drawn_within(&bounded, &unbounded);
    }

    /// Addresses with a flag for "the stream's own": every row a stream flags holds the same
    /// address, in either column, while unflagged addresses vary from row to row.
    #[test]
    fn a_stream_keeps_its_own_address() {
        tch::manual_seed(3);
        let address = |name: &str| AttributeSpec {
            own_value: true,
            ..categorical(name, &[2, 7, 5])
        };
        let cfg = ModelConfig {
            streams: 4,
            stream_dim: 2,
            ..small_config(vec![order(), address("sa"), address("da")], 4)
        };
        let net = StanNet::new(cfg, Device::Cpu);
        let cpu = CpuNet::from_net(&net, &[]).unwrap();
        let mut lanes: Vec<Lane> = (0..6)
            .map(|s| Lane::new(&cpu, s, 0.0, 1e9, 11, true))
            .collect();
        // The last stream is given its address (as a trained model's codec gives it).
        let given = lanes.pop().unwrap().keeping(vec![4.0, 3.0]);
        lanes.push(given);
        let mut scratch = Scratch::default();
        let mut own: Vec<Vec<Vec<f32>>> = vec![vec![]; 6];
        let mut others: Vec<Vec<f32>> = vec![];
        for _ in 0..40 {
            for row in step_lanes(
                &cpu,
                &mut scratch,
                &mut lanes,
                0.0,
                &|_: f32| 1.0,
                Clock::DAILY,
            ) {
                for first in [3, 6] {
                    let octets = row.slots[first + 1..first + 3].to_vec();
                    if row.slots[first] == 1.0 {
                        own[row.stream].push(octets);
                    } else {
                        others.push(octets);
                    }
                }
            }
        }
        assert_own_values_kept(&own, others);
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = 0.0f32;
        while x > -90.0 {
            let (e, g) = (x.exp(), fast_exp(x));
            assert!((e - g).abs() <= 1e-5 * e + 1e-37, "e^{x}: {e} vs {g}");
            x -= 0.0173;
        }
        assert!(fast_exp(-200.0) < 1e-37);
        assert!(fast_exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn sampling_keeps_to_allowed_classes_and_follows_the_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let logits = [0.0f32, 2.0_f32.ln(), 50.0, f32::NEG_INFINITY];
        let allowed = [1.0, 1.0, 0.0, 1.0];
        let mut counts = [0usize; 4];
        for _ in 0..30_000 {
            counts[sample_logits(&logits, &allowed, &mut rng)] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        let share = counts[1] as f64 / 30_000.0;
        assert!((share - 2.0 / 3.0).abs() < 0.02, "{counts:?}");
    }
}
