//! Training (paper Algorithm 1): windows of the k previous rows of the same stream, zero padded
//! at a stream's start; Adam; 10 % of windows held out for validation and early stopping.

use super::net::StanNet;
use crate::codec::EncodedTable;
use crate::error::Result;
use crate::options::LrSchedule;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::Instant;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// Epochs without a better validation loss before the learning rate is halved.
const PLATEAU_EPOCHS: usize = 2;
/// Share of training windows shown empty, as at a stream's start (with stream identities).
const FRESH_START_SHARE: f64 = 0.05;

#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub epochs: usize,
    pub max_time_s: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub lr_schedule: LrSchedule,
    pub validation_fraction: f64,
    pub patience: usize,
    pub seed: u64,
}

/// What the trainer reports to its caller.
#[derive(Debug, Clone)]
pub enum Progress {
    /// After every batch (the caller checks for cancellation here).
    Batch,
    Epoch(EpochReport),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub windows_per_s: f64,
    pub elapsed_s: f64,
    pub remaining_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub train_windows: usize,
    pub validation_windows: usize,
    pub seconds: f64,
    pub stopped_by: &'static str,
    pub history: Vec<EpochReport>,
}

/// Device-resident training tensors.
struct Windows {
    /// [rows + 1, slots]; the last row is the zero padding row.
    slots: Tensor,
    present: Tensor,
    /// [rows, k] indices into `slots`, padding → rows.
    index: Tensor,
    valid: Tensor,
    /// [rows] the stream each row belongs to (its position in `stream_starts`).
    stream: Tensor,
}

fn windows(data: &EncodedTable, width: usize, attrs: usize, k: usize, device: Device) -> Windows {
    let rows = data.rows;
    let mut index = vec![rows as i64; rows * k];
    let mut valid = vec![0f32; rows * k];
    let mut starts = data.stream_starts.clone();
    starts.push(rows);
    let mut stream = vec![0i64; rows];
    for (i, s) in starts.windows(2).enumerate() {
        stream[s[0]..s[1]].fill(i as i64);
        for p in s[0]..s[1] {
            for w in 0..k {
                // Window slot w holds row p - k + w (oldest first), if it is in the same stream.
                if p + w >= k && p + w - k >= s[0] {
                    index[p * k + w] = (p + w - k) as i64;
                    valid[p * k + w] = 1.0;
                }
            }
        }
    }
    let mut slots = data.slots.clone();
    slots.extend(std::iter::repeat_n(0.0, width));
    Windows {
        slots: Tensor::from_slice(&slots)
            .view([rows as i64 + 1, width as i64])
            .to(device),
        present: Tensor::from_slice(&data.present)
            .view([rows as i64, attrs as i64])
            .to(device),
        index: Tensor::from_slice(&index)
            .view([rows as i64, k as i64])
            .to(device),
        valid: Tensor::from_slice(&valid)
            .view([rows as i64, k as i64])
            .to(device),
        stream: Tensor::from_slice(&stream).to(device),
    }
}

impl Windows {
    fn batch(&self, net: &StanNet, rows: &Tensor, train: bool) -> Tensor {
        let k = self.index.size()[1];
        let b = rows.size()[0];
        let idx = self.index.index_select(0, rows);
        let win = self.slots.index_select(0, &idx.view([-1])).view([b, k, -1]);
        let mut valid = self.valid.index_select(0, rows);
        if train && net.config.identity_width() > 0 {
            // Some windows train as a stream's first row (nothing before it): generation starts
            // every stream there, and a stream's identity is what has to say which stream it
            // is; the real first rows are one per stream, far too few to learn that from.
            let keep = Tensor::rand([b, 1], (Kind::Float, valid.device())).ge(FRESH_START_SHARE);
            valid *= keep.to_kind(Kind::Float);
        }
        let streams = self.stream.index_select(0, rows);
        let context = net.context(&win, &valid, &streams, train);
        let current = self.slots.index_select(0, rows);
        let losses = net.losses(&context, &current) * self.present.index_select(0, rows);
        losses
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .mean(Kind::Float)
    }
}

pub fn train(
    net: &mut StanNet,
    data: &EncodedTable,
    settings: &TrainSettings,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainSummary> {
    let started = Instant::now();
    let device = net.device();
    let width = net.config.slot_width();
    let attrs = net.config.attributes.len();
    let w = windows(data, width, attrs, net.config.window, device);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    let mut all: Vec<i64> = (0..data.rows as i64).collect();
    all.shuffle(&mut rng);
    let n_val =
        ((data.rows as f64 * settings.validation_fraction).round() as usize).min(data.rows - 1);
    let (val_rows, train_rows) = all.split_at(n_val);
    let mut train_rows = train_rows.to_vec();

    let mut learning_rate = settings.learning_rate;
    let mut opt = nn::Adam::default().build(&net.vs, learning_rate)?;
    let mut best = (f64::INFINITY, 0usize);
    let mut best_weights: Option<Vec<(String, Tensor)>> = None;
    let mut history = Vec::new();
    let mut stopped_by = "epochs";
    let batch = settings.batch_size.max(1);
    let batches_per_epoch = train_rows.len().div_ceil(batch).max(1);
    let mut batches_done = 0usize;
    for epoch in 1..=settings.epochs {
        let epoch_start = Instant::now();
        train_rows.shuffle(&mut rng);
        let (mut sum, mut batches) = (0.0, 0usize);
        for chunk in train_rows.chunks(batch) {
            // Batch norm needs more than one row per channel in training mode.
            if chunk.len() < 2 {
                continue;
            }
            if settings.lr_schedule == LrSchedule::Cosine && batches_done.is_multiple_of(16) {
                // Progress through the budget: epochs or time, whichever runs out first.
                let progress = (batches_done as f64 / (batches_per_epoch * settings.epochs) as f64)
                    .max(started.elapsed().as_secs_f64() / settings.max_time_s)
                    .min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                opt.set_lr(settings.learning_rate * (0.05 + 0.95 * cosine));
            }
            batches_done += 1;
            let rows = Tensor::from_slice(chunk).to(device);
            let loss = w.batch(net, &rows, true);
            opt.backward_step(&loss);
            sum += loss.double_value(&[]);
            batches += 1;
            progress(Progress::Batch)?;
        }
        let validation_loss = if val_rows.is_empty() {
            sum / batches.max(1) as f64
        } else {
            tch::no_grad(|| {
                let mut total = 0.0;
                for chunk in val_rows.chunks(4096) {
                    let rows = Tensor::from_slice(chunk).to(device);
                    total += w.batch(net, &rows, false).double_value(&[]) * chunk.len() as f64;
                }
                total / val_rows.len() as f64
            })
        };
        let elapsed = started.elapsed().as_secs_f64();
        let epoch_s = epoch_start.elapsed().as_secs_f64();
        let report = EpochReport {
            epoch,
            epochs: settings.epochs,
            train_loss: sum / batches.max(1) as f64,
            validation_loss,
            windows_per_s: train_rows.len() as f64 / epoch_s.max(1e-9),
            elapsed_s: elapsed,
            remaining_s: (epoch_s * (settings.epochs - epoch) as f64)
                .min((settings.max_time_s - elapsed).max(0.0)),
        };
        history.push(report.clone());
        progress(Progress::Epoch(report))?;
        if validation_loss.is_finite() && validation_loss < best.0 {
            best = (validation_loss, epoch);
            best_weights = Some(snapshot(&net.vs));
        } else if epoch - best.1 >= settings.patience {
            stopped_by = "early stopping";
            break;
        } else if settings.lr_schedule == LrSchedule::Plateau
            && (epoch - best.1) % PLATEAU_EPOCHS == 0
        {
            // A plateau: take smaller steps from here.
            learning_rate *= 0.5;
            opt.set_lr(learning_rate);
        }
        if elapsed + epoch_s > settings.max_time_s {
            stopped_by = "max_time";
            break;
        }
    }
    if let Some(weights) = best_weights {
        restore(&net.vs, &weights);
    }
    Ok(TrainSummary {
        epochs_run: history.len(),
        best_epoch: best.1,
        best_validation_loss: best.0,
        train_windows: train_rows.len(),
        validation_windows: val_rows.len(),
        seconds: started.elapsed().as_secs_f64(),
        stopped_by,
        history,
    })
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach().copy()))
        .collect()
}

fn restore(vs: &nn::VarStore, weights: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, t) in weights {
            if let Some(v) = vars.get(name) {
                v.shallow_clone().copy_(t);
            }
        }
    });
}
