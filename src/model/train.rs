//! Training (paper Algorithm 1): windows of the k previous rows of the same stream, zero padded
//! at a stream's start; Adam; 10 % of windows held out for validation and early stopping.

use super::net::StanNet;
use super::spec::{HeadSpec, ModelConfig};
use crate::codec::EncodedTable;
use crate::error::Result;
use crate::options::LrSchedule;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// Epochs without a better validation loss before the learning rate is halved.
const PLATEAU_EPOCHS: usize = 2;
/// Share of training windows shown empty, as at a stream's start (with stream identities).
const FRESH_START_SHARE: f64 = 0.05;
/// Streams with fewer training rows share one identity: one of their own would get a gradient
/// step or two per epoch and stay near its random start, and a generated stream following it
/// behaved like some busy host (UGR'16: hosts seen once before 18:00 generated 1,600–7,000 flows
/// after it). Shared, the identity learns from all such streams' rows that they are rare.
pub const SPARSE_STREAM_ROWS: usize = 50;
/// A row is drawn at most this many times as often as a row of the most common values (more
/// would have training repeat a handful of rows until it learns them by heart).
const MAX_EMPHASIS: f64 = 20.0;
/// Rows of a rare value with share p are drawn p^-BALANCE_POWER times as often: as if its share
/// were √p (0.5 % → 7 %), halfway between the data and classes drawn alike.
const BALANCE_POWER: f64 = 0.5;
/// Values in fewer than this share of the rows are rare. Commoner values are drawn as they are:
/// they have rows enough to learn from, and each extra draw of theirs is one less of the most
/// common rows in a time-budgeted training (UGR'16: UDP and ICMP, 20 % and 6 %, took half the
/// draws TCP lost).
const RARE_SHARE: f64 = 0.01;
/// Windows per validation forward pass: a few training batches' worth, so the pass needs no
/// more memory than a training step (training keeps freed memory for reuse, `heap`; 4,096
/// windows added 500 MB to the peak on a day of UGR'16 flows).
pub(crate) const VALIDATION_CHUNK: usize = 1024;

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
    /// Category attributes whose rare values' rows are drawn more often (see `row_emphasis`);
    /// empty: every row alike.
    pub balance_attributes: Vec<usize>,
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
    /// With rows drawn unevenly: [rows] each row's importance weight, and [attributes] 1 for the
    /// attributes it applies to (see `row_emphasis`).
    importance: Option<(Tensor, Tensor)>,
}

/// Each stream's number of rows, from where the streams start among `rows` rows.
fn stream_lengths(stream_starts: &[usize], rows: usize) -> impl Iterator<Item = usize> + '_ {
    let ends = stream_starts.iter().skip(1).copied().chain([rows]);
    stream_starts
        .iter()
        .zip(ends)
        .map(|(start, end)| end - start)
}

/// The streams (positions in `stream_starts`) with fewer than `SPARSE_STREAM_ROWS` rows, when
/// there are at least two of them.
pub fn sparse_streams(stream_starts: &[usize], rows: usize) -> Vec<usize> {
    let sparse: Vec<usize> = stream_lengths(stream_starts, rows)
        .enumerate()
        .filter(|&(_, n)| n < SPARSE_STREAM_ROWS)
        .map(|(i, _)| i)
        .collect();
    if sparse.len() >= 2 {
        sparse
    } else {
        vec![]
    }
}

/// Per stream, its number of rows as a z-score of log(rows) over the streams: the identity's
/// fixed rate feature (`ModelConfig::stream_rate`).
pub fn stream_rates(stream_starts: &[usize], rows: usize) -> Vec<f32> {
    let logs: Vec<f64> = stream_lengths(stream_starts, rows)
        .map(|n| (n.max(1) as f64).ln())
        .collect();
    let n = logs.len().max(1) as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt();
    logs.iter()
        .map(|l| {
            if sd > 0.0 {
                ((l - mean) / sd) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// How many times as often as the most common rows training draws each row: share^-power of the
/// row's rarest value among the category attributes when that share is under `RARE_SHARE`, at
/// most `MAX_EMPHASIS`; 1 for rows without a rare value. None when all rows weigh the same.
///
/// Why: a protocol seen in 0.06 % of the rows (ESP) or 0.5 % (GRE, IPIP) gets too few gradient
/// steps for the heads after it to learn what its flows look like (ports, sizes), and a
/// classifier trained on the synthetic rows then mistakes them for other protocols. Drawing a
/// row more often does not bias a head that comes after the categories, which models the row
/// given them; the heads up to the last category (gap, protocol) learn the rows' frequencies,
/// so their losses get importance weights that undo the emphasis (see `Windows::batch`).
fn row_emphasis(
    data: &EncodedTable,
    config: &ModelConfig,
    categories: &[usize],
    power: f64,
) -> Option<Vec<f64>> {
    if power <= 0.0 || data.rows == 0 {
        return None;
    }
    let width = config.slot_width();
    let attrs = config.attributes.len();
    let offsets = config.slot_offsets();
    let mut emphasis = vec![1.0f64; data.rows];
    for &a in categories {
        let Some(HeadSpec::Softmax { classes, .. }) = config.attributes[a].heads.first() else {
            continue;
        };
        let class_of = |r: usize| (data.slots[r * width + offsets[a]] as usize).min(classes - 1);
        let present = |r: usize| data.present[r * attrs + a] > 0.0;
        let mut counts = vec![0usize; *classes];
        for r in (0..data.rows).filter(|&r| present(r)) {
            counts[class_of(r)] += 1;
        }
        let total = counts.iter().sum::<usize>() as f64;
        for r in (0..data.rows).filter(|&r| present(r)) {
            let share = counts[class_of(r)] as f64 / total;
            if share < RARE_SHARE {
                emphasis[r] = emphasis[r].max(share.powf(-power).min(MAX_EMPHASIS));
            }
        }
    }
    let first = emphasis[0];
    emphasis.iter().any(|&e| e != first).then_some(emphasis)
}

/// One epoch's rows: each training row `emphasis / mean emphasis` times in expectation (the
/// whole part always, the fraction by chance), so common rows are not dropped at random.
fn emphasised_epoch(train_rows: &[i64], copies: &[f64], rng: &mut impl Rng) -> Vec<i64> {
    let mut rows = Vec::with_capacity(train_rows.len() + train_rows.len() / 8);
    for (&row, &c) in train_rows.iter().zip(copies) {
        let n = c.floor() as usize + usize::from(rng.random::<f64>() < c.fract());
        rows.extend(std::iter::repeat_n(row, n));
    }
    rows.shuffle(rng);
    rows
}

/// The training windows; `sparse` streams (see `sparse_streams`) all train the first one's
/// identity.
fn windows(
    data: &EncodedTable,
    sparse: &[usize],
    width: usize,
    attrs: usize,
    k: usize,
    device: Device,
) -> Windows {
    let rows = data.rows;
    let mut index = vec![rows as i64; rows * k];
    let mut valid = vec![0f32; rows * k];
    let mut starts = data.stream_starts.clone();
    starts.push(rows);
    let mut stream = vec![0i64; rows];
    let mut shares_identity = vec![false; data.stream_starts.len()];
    for &i in sparse {
        shares_identity[i] = true;
    }
    for (i, s) in starts.windows(2).enumerate() {
        // Sparse streams train the first sparse stream's identity (see `SPARSE_STREAM_ROWS`).
        let identity = if shares_identity[i] { sparse[0] } else { i };
        stream[s[0]..s[1]].fill(identity as i64);
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
        importance: None,
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
        let mut losses = net.losses(&context, &current) * self.present.index_select(0, rows);
        if let (true, Some((weight, applies))) = (train, &self.importance) {
            // Heads up to the categories learn frequencies: weigh their losses back to the
            // rows' real shares. Later heads learn the rows given their categories, unbiased.
            let weight = weight.index_select(0, rows).unsqueeze(1);
            losses *= weight * applies + (applies.ones_like() - applies);
        }
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
    let _heap = super::heap::RetainFreedMemory::new();
    let device = net.device();
    let width = net.config.slot_width();
    let attrs = net.config.attributes.len();
    let sparse = sparse_streams(&data.stream_starts, data.rows);
    let mut w = windows(data, &sparse, width, attrs, net.config.window, device);
    let rates = stream_rates(&data.stream_starts, data.rows);
    // Sparse streams train one identity: its rate is their mean (each gets its own after).
    let mut training_rates = rates.clone();
    if let Some(&shared) = sparse.first() {
        training_rates[shared] =
            sparse.iter().map(|&s| rates[s]).sum::<f32>() / sparse.len() as f32;
    }
    // Built once: training writes them back after every step.
    let training_rates = Tensor::from_slice(&training_rates).to(device);
    net.set_stream_rates(&training_rates);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    let mut all: Vec<i64> = (0..data.rows as i64).collect();
    all.shuffle(&mut rng);
    let n_val =
        ((data.rows as f64 * settings.validation_fraction).round() as usize).min(data.rows - 1);
    let (val_rows, train_rows) = all.split_at(n_val);
    let mut train_rows = train_rows.to_vec();
    let emphasis = row_emphasis(
        data,
        &net.config,
        &settings.balance_attributes,
        BALANCE_POWER,
    );
    // Per training row, how many times an epoch draws it on average.
    let mut copies: Option<Vec<f64>> = None;
    if let Some(e) = &emphasis {
        let mean = train_rows.iter().map(|&r| e[r as usize]).sum::<f64>() / train_rows.len() as f64;
        let weights: Vec<f32> = e.iter().map(|&x| (mean / x) as f32).collect();
        let last = settings
            .balance_attributes
            .iter()
            .max()
            .copied()
            .unwrap_or(0);
        let applies: Vec<f32> = (0..attrs).map(|a| f32::from(u8::from(a <= last))).collect();
        w.importance = Some((
            Tensor::from_slice(&weights).to(device),
            Tensor::from_slice(&applies).to(device),
        ));
        copies = Some(train_rows.iter().map(|&r| e[r as usize] / mean).collect());
    }

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
        let emphasised;
        let epoch_rows: &[i64] = match &copies {
            Some(copies) => {
                emphasised = emphasised_epoch(&train_rows, copies, &mut rng);
                &emphasised
            }
            None => {
                train_rows.shuffle(&mut rng);
                &train_rows
            }
        };
        // Summed on the device: reading each batch's loss would make a GPU wait for every step.
        let (mut sum, mut batches) = (Tensor::zeros([], (Kind::Float, device)), 0usize);
        for chunk in epoch_rows.chunks(batch) {
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
            // The rate feature is data, not a weight: undo the step's change to it.
            net.set_stream_rates(&training_rates);
            sum += loss.detach();
            batches += 1;
            progress(Progress::Batch)?;
        }
        let validation_loss = if val_rows.is_empty() {
            sum.double_value(&[]) / batches.max(1) as f64
        } else {
            tch::no_grad(|| {
                let mut total = 0.0;
                for chunk in val_rows.chunks(VALIDATION_CHUNK) {
                    crate::interrupt::check();
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
            train_loss: sum.double_value(&[]) / batches.max(1) as f64,
            validation_loss,
            windows_per_s: epoch_rows.len() as f64 / epoch_s.max(1e-9),
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
    if let Some((&shared, others)) = sparse.split_first() {
        net.copy_identity(shared, others);
    }
    net.set_stream_rates(&Tensor::from_slice(&rates).to(device));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::fixtures::{categorical, numeric, order, small_config};

    /// Rows of (gap, time of day ×2, kind, x) with `kinds[r]` as the category's class.
    fn table(kinds: &[usize]) -> (ModelConfig, EncodedTable) {
        let config = small_config(vec![order(), categorical("kind", &[3]), numeric("x")], 2);
        let slots = kinds
            .iter()
            .flat_map(|&k| [0.0, 0.0, 1.0, k as f32, 0.5])
            .collect();
        let data = EncodedTable {
            slots,
            present: vec![1.0; kinds.len() * 3],
            stream_starts: vec![0],
            rows: kinds.len(),
        };
        (config, data)
    }

    #[test]
    fn stream_rates_are_z_scores_of_log_rows() {
        let rates = stream_rates(&[0, 10, 110, 1110], 11110);
        let mean = rates.iter().sum::<f32>() / 4.0;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{rates:?}");
        // Ten times the rows is the same step in log(rows) at every scale.
        let steps: Vec<f32> = rates.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            steps
                .iter()
                .all(|d| (d - steps[0]).abs() < 1e-5 && *d > 0.0),
            "{rates:?}"
        );
        assert_eq!(stream_rates(&[0, 5, 10], 15), vec![0.0; 3]);
    }

    #[test]
    fn streams_with_few_rows_are_sparse_when_there_are_several() {
        // Streams of 100, 3, 49, 50 and 1 rows.
        let starts = [0, 100, 103, 152, 202];
        assert_eq!(sparse_streams(&starts, 203), vec![1, 2, 4]);
        // One sparse stream has nobody to share with: it keeps its own identity.
        assert!(sparse_streams(&[0, 100], 103).is_empty());
    }

    #[test]
    fn rare_category_rows_are_drawn_more_often_up_to_a_bound() {
        // Class 2 in 0.1 % of 1,000 rows, class 1 in every `every`-th row, class 0 in the rest.
        let classes = |every: usize| -> Vec<usize> {
            (0..1000)
                .map(|r| match r {
                    0 => 2,
                    r if r % every == 1 => 1,
                    _ => 0,
                })
                .collect()
        };
        // Class 1 in 1 %: not rare.
        let (config, data) = table(&classes(100));
        let e = row_emphasis(&data, &config, &[1], 0.5).unwrap();
        assert_eq!((e[2], e[1]), (1.0, 1.0));
        // 0.1 % would be √1000 ≈ 31.6 times: capped.
        assert_eq!(e[0], MAX_EMPHASIS);
        assert!(row_emphasis(&data, &config, &[1], 0.0).is_none());
        assert!(row_emphasis(&data, &config, &[], 0.5).is_none());

        // Class 1 in 0.4 %: rare, drawn 1 / √0.004 ≈ 15.8 times as often.
        let kinds = classes(250);
        let (config, data) = table(&kinds);
        let e = row_emphasis(&data, &config, &[1], 0.5).unwrap();
        let rare = 1.0 / 0.004f64.sqrt();
        assert!((e[1] - rare).abs() < 1e-9, "{}", e[1]);

        // An epoch draws each row its share of copies: every rare row about 15.8 / mean times.
        let train_rows: Vec<i64> = (0..1000).collect();
        let mean = e.iter().sum::<f64>() / 1000.0;
        let copies: Vec<f64> = e.iter().map(|x| x / mean).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let epoch = emphasised_epoch(&train_rows, &copies, &mut rng);
        assert!((950..=1050).contains(&epoch.len()), "{}", epoch.len());
        let of_class = |k: usize| epoch.iter().filter(|&&r| kinds[r as usize] == k).count();
        let expected_rare = 4.0 * rare / mean;
        assert!(
            (of_class(1) as f64 - expected_rare).abs() <= 2.0,
            "{} rare-class rows, expected {expected_rare:.1}",
            of_class(1)
        );
        assert!(of_class(2) >= (MAX_EMPHASIS / mean).floor() as usize);
    }
}
