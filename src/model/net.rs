//! The network: per-slot embeddings → window CNN (shared by all attributes) → one head per
//! attribute that sees the CNN's context and, with mask B, the current row's earlier attributes.

use super::spec::{embedding_dim, HeadSpec, ModelConfig};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

struct WindowCnn {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    context: nn::Linear,
}

struct Head {
    hidden: nn::Linear,
    output: nn::Linear,
    /// Row of `masks` for this head.
    mask: i64,
}

/// How one slot of a row is turned into input features.
enum SlotInput {
    /// Continuous value or extra input: used as is.
    Value,
    Embedded(nn::Embedding, i64),
}

pub struct StanNet {
    pub config: ModelConfig,
    pub vs: nn::VarStore,
    slot_inputs: Vec<SlotInput>,
    /// One window CNN shared by all attributes, or one per attribute (the paper's layout).
    cnns: Vec<WindowCnn>,
    /// [streams, stream_dim]: each training stream's learned identity.
    identities: Option<nn::Embedding>,
    /// Per attribute, per head.
    heads: Vec<Vec<Head>>,
    /// [heads, features]: which current-row features each head may see.
    masks: Tensor,
    /// [heads × head_hidden, context + features]: the masks above laid over every head's hidden
    /// weights (context columns all 1), so one product computes every head's hidden layer.
    hidden_weight_mask: Tensor,
}

impl StanNet {
    pub fn new(config: ModelConfig, device: Device) -> StanNet {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut slot_inputs = Vec::new();
        for (a, attr) in config.attributes.iter().enumerate() {
            for (h, head) in attr.heads.iter().enumerate() {
                slot_inputs.push(match head {
                    HeadSpec::Mdn => SlotInput::Value,
                    HeadSpec::Softmax { classes, .. } => SlotInput::Embedded(
                        nn::embedding(
                            &root / "embed" / format!("a{a}h{h}"),
                            *classes as i64,
                            embedding_dim(*classes) as i64,
                            Default::default(),
                        ),
                        *classes as i64,
                    ),
                });
            }
            for _ in 0..attr.extra_inputs {
                slot_inputs.push(SlotInput::Value);
            }
        }
        let features = config.feature_width() as i64;
        let k = config.window as i64;
        let c = config.conv_channels as i64;
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let pooled = if k >= 2 && features >= 2 {
            (k / 2) * (features / 2)
        } else {
            k * features
        };
        let channels = if config.conv_layers == 0 { 1 } else { c };
        let cnn_names: Vec<String> = if config.cnn_per_attribute {
            (0..config.attributes.len())
                .map(|a| format!("cnn{a}"))
                .collect()
        } else {
            vec!["cnn".to_string()]
        };
        let cnns = cnn_names
            .iter()
            .map(|name| {
                let p = &root / name.as_str();
                WindowCnn {
                    convs: (0..config.conv_layers)
                        .map(|l| {
                            let input = if l == 0 { 1 } else { c };
                            (
                                nn::conv2d(&p / format!("conv{l}"), input, c, 3, conv_cfg),
                                nn::batch_norm2d(&p / format!("bn{l}"), c, Default::default()),
                            )
                        })
                        .collect(),
                    context: nn::linear(
                        &p / "context",
                        channels * pooled,
                        config.hidden as i64,
                        Default::default(),
                    ),
                }
            })
            .collect();
        let identity = config.identity_width() as i64;
        let identities = (identity > 0).then(|| {
            nn::embedding(
                &root / "stream",
                config.streams as i64,
                identity,
                Default::default(),
            )
        });
        // Heads see the CNN summary, the most recent row itself, the stream's identity, and
        // (mask B) the current row.
        let head_in = config.hidden as i64 + 2 * features + identity;
        let mut heads = Vec::new();
        let mut masks = Vec::new();
        for (a, attr) in config.attributes.iter().enumerate() {
            let mut attribute_heads = Vec::new();
            for h in 0..attr.heads.len() {
                let p = &root / "head" / format!("a{a}h{h}");
                let out = config.head_outputs(a, h) as i64;
                let hh = config.head_hidden as i64;
                attribute_heads.push(Head {
                    hidden: nn::linear(&p / "hidden", head_in, hh, Default::default()),
                    output: nn::linear(&p / "out", hh, out, Default::default()),
                    mask: masks.len() as i64,
                });
                let visible: Vec<f32> = config
                    .visible_features(a, h)
                    .iter()
                    .map(|&v| f32::from(u8::from(v)))
                    .collect();
                masks.push(visible);
            }
            heads.push(attribute_heads);
        }
        let hh = config.head_hidden as i64;
        let ctx_in = config.hidden as i64 + features + identity;
        let weight_mask: Vec<f32> = masks
            .iter()
            .flat_map(|m| {
                let row: Vec<f32> = std::iter::repeat_n(1.0, ctx_in as usize)
                    .chain(m.iter().copied())
                    .collect();
                std::iter::repeat_n(row, hh as usize).flatten()
            })
            .collect();
        let hidden_weight_mask = Tensor::from_slice(&weight_mask)
            .view([masks.len() as i64 * hh, ctx_in + features])
            .to(device);
        let flat: Vec<f32> = masks.concat();
        let masks = Tensor::from_slice(&flat)
            .view([masks.len() as i64, features])
            .to(device);
        StanNet {
            hidden_weight_mask,
            config,
            vs,
            slot_inputs,
            cnns,
            identities,
            heads,
            masks,
        }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// [N, slots] → [N, features].
    pub fn embed(&self, slots: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = self
            .slot_inputs
            .iter()
            .enumerate()
            .map(|(s, input)| {
                let col = slots.select(1, s as i64);
                match input {
                    SlotInput::Value => col.clamp(-20.0, 20.0).unsqueeze(1),
                    SlotInput::Embedded(e, classes) => {
                        e.forward_t(&col.to_kind(Kind::Int64).clamp(0, classes - 1), false)
                    }
                }
            })
            .collect();
        Tensor::cat(&parts, 1)
    }

    /// Gives each of `streams` the identity learned for `source` (see `train::SPARSE_STREAM_ROWS`).
    pub fn copy_identity(&self, source: usize, streams: &[usize]) {
        if let Some(identities) = &self.identities {
            tch::no_grad(|| {
                let learned = identities.ws.get(source as i64);
                for &s in streams {
                    identities.ws.get(s as i64).copy_(&learned);
                }
            });
        }
    }

    /// Writes each stream's fixed rate feature, the identity's last column (see
    /// `ModelConfig::stream_rate`); `rates` is [streams] on the net's device.
    pub fn set_stream_rates(&self, rates: &Tensor) {
        if let (Some(identities), true) = (&self.identities, self.config.stream_rate) {
            let column = self.config.stream_dim as i64;
            tch::no_grad(|| {
                identities
                    .ws
                    .narrow(1, column, 1)
                    .copy_(&rates.view([-1, 1]))
            });
        }
    }

    /// Window slots [B, k, slots] with validity [B, k] (0 for zero padding) and each window's
    /// training stream [B] (int64, below `config.streams`) → one context [B, hidden + features + identity] per window
    /// CNN: the CNN's summary of the window, then the most recent row's features as they are,
    /// then the stream's identity. Pooling blurs which row a value came from, and the last row
    /// is what the next one depends on most (an AR(1) process needs x_{t-1} exactly).
    pub fn context(
        &self,
        window_slots: &Tensor,
        valid: &Tensor,
        streams: &Tensor,
        train: bool,
    ) -> Vec<Tensor> {
        let (b, k, s) = window_slots.size3().expect("window is [B, k, slots]");
        let feats =
            self.embed(&window_slots.view([b * k, s])).view([b, k, -1]) * valid.unsqueeze(2);
        let mut last = feats.select(1, k - 1);
        if let Some(identities) = &self.identities {
            last = Tensor::cat(&[last, identities.forward_t(streams, false)], 1);
        }
        self.cnns
            .iter()
            .map(|cnn| {
                let mut x = feats.unsqueeze(1);
                for (conv, bn) in &cnn.convs {
                    x = x.apply(conv).apply_t(bn, train).relu();
                }
                let (_, _, h, w) = x.size4().expect("4-d");
                if h >= 2 && w >= 2 {
                    x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
                }
                let summary = x.flatten(1, -1).apply(&cnn.context).relu();
                Tensor::cat(&[&summary, &last], 1)
            })
            .collect()
    }

    /// Raw output of head `h` of attribute `a`, given the context and the current row's features.
    pub fn head_output(
        &self,
        a: usize,
        h: usize,
        contexts: &[Tensor],
        current_features: &Tensor,
    ) -> Tensor {
        let head = &self.heads[a][h];
        let context = &contexts[if contexts.len() > 1 { a } else { 0 }];
        let visible = current_features * self.masks.get(head.mask);
        Tensor::cat(&[context, &visible], 1)
            .apply(&head.hidden)
            .relu()
            .apply(&head.output)
    }

    /// Per-row negative log-likelihood of every attribute: [B, attributes].
    pub fn losses(&self, contexts: &[Tensor], current_slots: &Tensor) -> Tensor {
        let current = self.embed(current_slots);
        let offsets = self.config.slot_offsets();
        let rows = current_slots.size()[0];
        let hh = self.config.head_hidden as i64;
        // With one shared CNN every head's hidden layer is one product: [B, heads × hh]. The
        // masked weights give what `head_output` computes with masked inputs.
        let shared_hidden = (contexts.len() == 1).then(|| {
            let heads: Vec<&Head> = self.heads.iter().flatten().collect();
            let weights: Vec<&Tensor> = heads.iter().map(|h| &h.hidden.ws).collect();
            let biases: Vec<&Tensor> = heads
                .iter()
                .map(|h| h.hidden.bs.as_ref().expect("hidden layers have a bias"))
                .collect();
            let w = Tensor::cat(&weights, 0) * &self.hidden_weight_mask;
            Tensor::cat(&[&contexts[0], &current], 1)
                .linear(&w, Some(Tensor::cat(&biases, 0)))
                .relu()
        });
        let per_attribute: Vec<Tensor> = self
            .config
            .attributes
            .iter()
            .enumerate()
            .map(|(a, attr)| {
                let mut loss = Tensor::zeros([rows], (Kind::Float, current_slots.device()));
                for (h, spec) in attr.heads.iter().enumerate() {
                    let head = &self.heads[a][h];
                    let out = match &shared_hidden {
                        Some(hidden) => hidden.narrow(1, head.mask * hh, hh).apply(&head.output),
                        None => self.head_output(a, h, contexts, &current),
                    };
                    let target = current_slots.select(1, (offsets[a] + h) as i64);
                    loss += match spec {
                        HeadSpec::Mdn => mdn_nll(&out, &target, self.config.mixtures as i64),
                        HeadSpec::Softmax { .. } => out.cross_entropy_loss::<Tensor>(
                            &target.to_kind(Kind::Int64),
                            None,
                            tch::Reduction::None,
                            -100,
                            0.0,
                        ),
                    };
                }
                loss
            })
            .collect();
        Tensor::stack(&per_attribute, 1)
    }
}

/// Splits an MDN head's output into (log weights, means, standard deviations).
pub fn mdn_parts(out: &Tensor, mixtures: i64) -> (Tensor, Tensor, Tensor) {
    let parts = out.split(mixtures, 1);
    let log_weights = parts[0].log_softmax(1, Kind::Float);
    let log_sd = parts[2].clamp(-7.0, 5.0);
    (log_weights, parts[1].shallow_clone(), log_sd.exp())
}

fn mdn_nll(out: &Tensor, target: &Tensor, mixtures: i64) -> Tensor {
    let (log_w, mean, sd) = mdn_parts(out, mixtures);
    let z = (target.unsqueeze(1) - &mean) / &sd;
    let log_pdf = z.square() * -0.5 - sd.log() - LOG_SQRT_2PI;
    -(log_w + log_pdf).logsumexp([1], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::fixtures::{categorical, order, small_config};

    /// The one-product hidden layer used in training gives the losses that running each head
    /// on its masked input gives (the layout generation and `head_output` use).
    #[test]
    fn shared_hidden_layer_gives_the_per_head_losses() {
        let config = ModelConfig {
            streams: 3,
            stream_dim: 2,
            ..small_config(
                vec![order(), categorical("sa", &[6, 4]), categorical("pr", &[3])],
                4,
            )
        };
        tch::manual_seed(11);
        let net = StanNet::new(config.clone(), Device::Cpu);
        let b = 7;
        let cur = Tensor::cat(
            &[
                Tensor::randn([b, 3], (Kind::Float, Device::Cpu)),
                Tensor::randint(6, [b, 1], (Kind::Float, Device::Cpu)),
                Tensor::randint(4, [b, 1], (Kind::Float, Device::Cpu)),
                Tensor::randint(3, [b, 1], (Kind::Float, Device::Cpu)),
            ],
            1,
        );
        let window = cur.unsqueeze(1).repeat([1, 4, 1]);
        let valid = Tensor::ones([b, 4], (Kind::Float, Device::Cpu));
        tch::no_grad(|| {
            let streams = Tensor::randint(3, [b], (Kind::Int64, Device::Cpu));
            let contexts = net.context(&window, &valid, &streams, false);
            let got = net.losses(&contexts, &cur);
            let features = net.embed(&cur);
            let offsets = config.slot_offsets();
            let expected: Vec<Tensor> = config
                .attributes
                .iter()
                .enumerate()
                .map(|(a, attr)| {
                    let mut loss = Tensor::zeros([b], (Kind::Float, Device::Cpu));
                    for (h, spec) in attr.heads.iter().enumerate() {
                        let out = net.head_output(a, h, &contexts, &features);
                        let target = cur.select(1, (offsets[a] + h) as i64);
                        loss += match spec {
                            HeadSpec::Mdn => mdn_nll(&out, &target, 2),
                            HeadSpec::Softmax { .. } => -out
                                .log_softmax(1, Kind::Float)
                                .gather(1, &target.to_kind(Kind::Int64).unsqueeze(1), false)
                                .squeeze_dim(1),
                        };
                    }
                    loss
                })
                .collect();
            let expected = Tensor::stack(&expected, 1);
            // Relative to the loss: float32 sums of a loss near 26 differ in the 6th digit.
            // (libtorch's random state is shared with parallel tests, so the inputs vary.)
            let diff = ((&got - &expected).abs() / (expected.abs() + 1.0))
                .max()
                .double_value(&[]);
            assert!(
                diff < 1e-5,
                "losses differ by {diff} (relative): {got} vs {expected}"
            );
        });
    }
}
