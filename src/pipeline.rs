//! The two verbs end to end, without Postgres: rows in → trained model out, and a stored model
//! → generated rows. The pgrx layer reads and writes the database around these.

use crate::codec::{ColumnValues, TableCodec};
use crate::error::{Error, Result};
use crate::model::cpu::{CpuNet, CpuSampler, Lane};
use crate::model::sample::Sampler;
use crate::model::train::{self, Progress, TrainSettings, TrainSummary};
use crate::model::{ModelConfig, StanNet};
use crate::options::TrainOptions;
use crate::schema::ColumnPlan;
use crate::store;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use tch::Device;

pub struct TrainedModel {
    /// The options as used: batch size and learning rate resolved for the table.
    pub options: TrainOptions,
    pub codec: TableCodec,
    pub config: ModelConfig,
    pub weights: Vec<u8>,
    pub summary: TrainSummary,
    /// Independent sequences seen in training; generation defaults to as many.
    pub streams: usize,
    pub rows: usize,
}

pub fn train_model(
    plans: &[ColumnPlan],
    values: &[ColumnValues],
    stream_keys: &[u64],
    options: &TrainOptions,
    device: Device,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainedModel> {
    let (codec, encoded) = TableCodec::fit_with(
        plans,
        values,
        stream_keys,
        options.min_category_count,
        options.exact_high_ports,
        options.stream_addresses,
    )?;
    let options = &options.resolved(encoded.rows);
    // One stream has nothing to tell apart; beyond what one generation can run, a stream's
    // identity would never be used.
    let streams = encoded.stream_starts.len();
    let identities = if (2..=MAX_STREAMS).contains(&streams) && options.stream_embedding > 0 {
        streams
    } else {
        0
    };
    let config = ModelConfig {
        attributes: codec.attributes(),
        window: options.window,
        conv_layers: options.conv_layers,
        conv_channels: options.conv_channels,
        hidden: options.hidden,
        head_hidden: options.head_hidden,
        mixtures: options.mixtures,
        mask: options.mask,
        cnn_per_attribute: options.cnn_per_attribute,
        streams: identities,
        stream_dim: if identities > 0 {
            options.stream_embedding
        } else {
            0
        },
    };
    tch::manual_seed(options.seed as i64);
    let mut net = StanNet::new(config.clone(), device);
    let settings = TrainSettings {
        epochs: options.epochs,
        max_time_s: options.max_time,
        batch_size: options.batch_size,
        learning_rate: options.learning_rate,
        lr_schedule: options.lr_schedule,
        validation_fraction: options.validation_fraction,
        patience: options.patience,
        seed: options.seed,
    };
    let summary = train::train(&mut net, &encoded, &settings, progress)?;
    let weights = store::save(&net)?;
    Ok(TrainedModel {
        options: options.clone(),
        codec,
        config,
        weights,
        summary,
        streams: encoded.stream_starts.len(),
        rows: encoded.rows,
    })
}

/// Generated rows as text values (None = NULL), one per codec column, in codec column order.
pub struct Generator {
    engine: Engine,
    codec: TableCodec,
    rng: ChaCha8Rng,
    pending: VecDeque<Vec<Option<String>>>,
}

/// libtorch on a GPU; plain arrays and SIMD kernels on the CPU (see `model::cpu`).
enum Engine {
    Torch(Box<Sampler>),
    Cpu(Box<CpuSampler>),
}

/// Spans beyond this are refused: they would run for days.
pub const MAX_SPAN_SECONDS: f64 = 366.0 * 86_400.0;
pub const MAX_STREAMS: usize = 100_000;

impl Generator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        codec: TableCodec,
        config: ModelConfig,
        weights: &[u8],
        device: Device,
        span_seconds: f64,
        streams: usize,
        seed: u64,
        start: Option<f64>,
    ) -> Result<Generator> {
        if !(span_seconds > 0.0 && span_seconds <= MAX_SPAN_SECONDS) {
            return Err(Error::option(
                "span",
                format!("{span_seconds} s is not in (0, 366 days]"),
            ));
        }
        if streams == 0 || streams > MAX_STREAMS {
            return Err(Error::option(
                "streams",
                format!("{streams} is not in 1..{MAX_STREAMS}"),
            ));
        }
        if config.attributes != codec.attributes() {
            return Err(Error::CorruptModel(
                "the stored network does not match the stored codecs".into(),
            ));
        }
        let net = store::load(config, weights, device)?;
        let (_, data_start, _) = codec.gap_scale();
        let gap_codec = codec.clone();
        let start = start.unwrap_or(data_start);
        let gap = Box::new(move |z| gap_codec.gap_seconds(z));
        let engine = if device == Device::Cpu {
            let cpu = CpuNet::from_net(&net, &codec.pairs)?;
            // Kept convolution outputs save work per step; beyond 256 MB of them (tens of
            // thousands of streams) each step recomputes them instead.
            let keep = streams.saturating_mul(cpu.activation_bytes()) <= 256 << 20;
            let lanes = (0..streams)
                .map(|s| {
                    Lane::new(&cpu, s, 0.0, span_seconds, seed, keep).keeping(codec.kept_value(s))
                })
                .collect();
            let threads = tch::get_num_threads().max(1) as usize;
            Engine::Cpu(Box::new(CpuSampler::new(cpu, lanes, threads, start, gap)))
        } else {
            Engine::Torch(Box::new(
                Sampler::new(net, streams, start, span_seconds, seed, gap, &codec.pairs)
                    .keeping(|s| codec.kept_value(s)),
            ))
        };
        Ok(Generator {
            engine,
            codec,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            pending: VecDeque::new(),
        })
    }

    /// The next row, or None when every stream has passed the span. Each call that needs a new
    /// step runs one network pass for all streams.
    pub fn next_row(&mut self) -> Result<Option<Vec<Option<String>>>> {
        while self.pending.is_empty() {
            let rows = match &mut self.engine {
                Engine::Torch(sampler) if !sampler.finished() => sampler.step()?,
                Engine::Cpu(sampler) if !sampler.finished() => sampler.step(),
                _ => return Ok(None),
            };
            for row in rows {
                let values = self.codec.decode_row(&row.slots, row.epoch, &mut self.rng);
                self.pending.push_back(values);
            }
        }
        Ok(self.pending.pop_front())
    }
}
