//! Generation (paper Algorithm 2): every stream starts from an all-zero window (and, with stream
//! identities, follows training stream `s mod streams`); each step runs
//! the window CNN once for all streams, then samples the attributes in order, then slides the
//! window. A stream stops when its clock passes the span.

use super::net::{mdn_parts, StanNet};
use super::spec::HeadSpec;
use crate::codec::time::Clock;
use crate::codec::{restrict_classes, PairMask, ValueRange};
use crate::error::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Kind, Tensor};

/// A generated row: its stream, its slots and its absolute time (epoch seconds).
pub struct SampledRow {
    pub stream: usize,
    pub slots: Vec<f32>,
    pub epoch: f64,
}

pub struct Sampler {
    net: StanNet,
    streams: usize,
    /// [streams, k, slots], oldest row first.
    window: Vec<f32>,
    valid: Vec<f32>,
    /// Seconds since `start` per stream.
    clock: Vec<f64>,
    alive: Vec<bool>,
    /// Per stream, its own value once drawn (`AttributeSpec::own_value`); empty before.
    own: Vec<Vec<f32>>,
    /// Per stream, the gap head's largest z-score (`super::capped_gap`).
    max_gap_z: Vec<f32>,
    start: f64,
    span: f64,
    gap_seconds: Box<dyn Fn(f32) -> f64>,
    time_of_day: Clock,
    /// Per slot of a softmax head: 1 for classes that may be sampled, 0 for banned ones.
    allowed: Vec<Vec<f32>>,
    /// Per slot: the pair masks that restrict it by an earlier slot's value.
    pairs: Vec<Vec<PairMask>>,
    /// Per slot: the z-scores a value head's draws keep to (`super::draw_within`).
    value_ranges: Vec<ValueRange>,
    rng: ChaCha8Rng,
}

impl Sampler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        net: StanNet,
        streams: usize,
        start: f64,
        span: f64,
        seed: u64,
        gap_seconds: Box<dyn Fn(f32) -> f64>,
        time_of_day: Clock,
        pair_masks: &[PairMask],
    ) -> Sampler {
        let k = net.config.window;
        let width = net.config.slot_width();
        let mut allowed = vec![vec![]; width];
        for (attr, offset) in net.config.attributes.iter().zip(net.config.slot_offsets()) {
            for (h, head) in attr.heads.iter().enumerate() {
                if let HeadSpec::Softmax { classes, banned } = head {
                    let mut mask = vec![1f32; *classes];
                    for &c in banned {
                        mask[c] = 0.0;
                    }
                    allowed[offset + h] = mask;
                }
            }
        }
        let mut pairs = vec![vec![]; width];
        for m in pair_masks
            .iter()
            .filter(|m| m.slot < width && m.given_slot < m.slot)
        {
            pairs[m.slot].push(m.clone());
        }
        Sampler {
            allowed,
            pairs,
            value_ranges: super::ranges_by_slot(width, &[]),
            streams,
            window: vec![0.0; streams * k * width],
            valid: vec![0.0; streams * k],
            clock: vec![0.0; streams],
            alive: vec![true; streams],
            own: vec![Vec::new(); streams],
            max_gap_z: vec![f32::INFINITY; streams],
            start,
            span,
            gap_seconds,
            time_of_day,
            rng: ChaCha8Rng::seed_from_u64(seed),
            net,
        }
    }

    /// Stream s keeps `own(s)` as its own value (`AttributeSpec::own_value`) from its first
    /// row (empty: it keeps the first it draws).
    pub fn keeping(mut self, own: impl Fn(usize) -> Vec<f32>) -> Sampler {
        self.own = (0..self.streams).map(own).collect();
        self
    }

    /// Stream s waits no longer than the gap z-score `max(s)` (`super::capped_gap`).
    pub fn waiting_at_most(mut self, max: impl Fn(usize) -> f32) -> Sampler {
        self.max_gap_z = (0..self.streams).map(max).collect();
        self
    }

    /// Value heads draw within these ranges (`super::draw_within`); others are left unbounded.
    pub fn drawing_within(mut self, ranges: &[ValueRange]) -> Sampler {
        self.value_ranges = super::ranges_by_slot(self.value_ranges.len(), ranges);
        self
    }

    pub fn finished(&self) -> bool {
        !self.alive.iter().any(|a| *a)
    }

    /// One row for every live stream; rows whose time passes the span end their stream instead.
    pub fn step(&mut self) -> Result<Vec<SampledRow>> {
        let config = &self.net.config;
        let (b, k, width) = (self.streams, config.window, config.slot_width());
        let device = self.net.device();
        let offsets = config.slot_offsets();
        let mut current = vec![0f32; b * width];
        tch::no_grad(|| -> Result<()> {
            let window = Tensor::from_slice(&self.window)
                .view([b as i64, k as i64, width as i64])
                .to(device);
            let valid = Tensor::from_slice(&self.valid)
                .view([b as i64, k as i64])
                .to(device);
            let identities: Vec<i64> = (0..b).map(|s| config.identity_of(s) as i64).collect();
            let streams = Tensor::from_slice(&identities).to(device);
            let context = self.net.context(&window, &valid, &streams, false);
            let mut null_value = vec![false; b];
            for (a, attr) in config.attributes.iter().enumerate() {
                for (h, spec) in attr.heads.iter().enumerate() {
                    // Each head sees the slots sampled so far, including its own attribute's.
                    let cur = Tensor::from_slice(&current)
                        .view([b as i64, width as i64])
                        .to(device);
                    let features = self.net.embed(&cur);
                    let out = self.net.head_output(a, h, &context, &features);
                    let out = &out;
                    let slot = offsets[a] + h;
                    match spec {
                        HeadSpec::Mdn => {
                            let (log_w, mean, sd) = mdn_parts(out, config.mixtures as i64);
                            let w = to_vec(&log_w.exp())?;
                            let (mean, sd) = (to_vec(&mean)?, to_vec(&sd)?);
                            let m = config.mixtures;
                            for r in 0..b {
                                // Slot 0 is the gap (the order column comes first).
                                let max = if slot == 0 {
                                    self.max_gap_z[r]
                                } else {
                                    f32::INFINITY
                                };
                                let range = &self.value_ranges[slot];
                                let rng = &mut self.rng;
                                let z = super::draw_within(range, || {
                                    let c = pick(&w[r * m..(r + 1) * m], None, rng);
                                    let z: f32 = rng.sample(StandardNormal);
                                    mean[r * m + c] + sd[r * m + c] * z
                                });
                                current[r * width + slot] = super::capped_gap(z, max);
                            }
                        }
                        HeadSpec::Softmax { classes, .. } => {
                            let p = to_vec(&out.softmax(1, Kind::Float))?;
                            let allowed = &self.allowed[slot];
                            let pairs = &self.pairs[slot];
                            let mut masked = Vec::new();
                            for r in 0..b {
                                let row = &current[r * width..(r + 1) * width];
                                let restricted = restrict_classes(
                                    pairs,
                                    |given| row[given] as u32,
                                    allowed,
                                    &mut masked,
                                );
                                let row_allowed: &[f32] =
                                    if restricted { &masked } else { allowed };
                                let probs = &p[r * classes..(r + 1) * classes];
                                let c = pick(probs, Some(row_allowed), &mut self.rng);
                                current[r * width + slot] = c as f32;
                                // A stream's own value, once given or drawn, is kept.
                                if attr.own_value && h > 0 && current[r * width + offsets[a]] >= 0.5
                                {
                                    if let Some(&kept) = self.own[r].get(h - 1) {
                                        current[r * width + slot] = kept;
                                    }
                                }
                            }
                        }
                    }
                }
                if attr.is_null_indicator() {
                    for (r, nv) in null_value.iter_mut().enumerate() {
                        *nv = current[r * width + offsets[a]] >= 0.5;
                    }
                } else {
                    // A NULL value is encoded as zeros, as in training.
                    for r in (0..b).filter(|&r| null_value[r]) {
                        current[r * width + offsets[a]..r * width + offsets[a] + attr.slots()]
                            .fill(0.0);
                    }
                    null_value.fill(false);
                    if attr.own_value {
                        for r in 0..b {
                            let values =
                                r * width + offsets[a]..r * width + offsets[a] + attr.slots();
                            if current[values.start] >= 0.5 && self.own[r].is_empty() {
                                self.own[r] = current[values.start + 1..values.end].to_vec();
                            }
                        }
                    }
                }
                if a == 0 {
                    // The order attribute: advance each stream's clock, then add time of day.
                    for r in 0..b {
                        let gap = (self.gap_seconds)(current[r * width]);
                        self.clock[r] += gap;
                        let tod = self.time_of_day.features(self.start + self.clock[r]);
                        current[r * width + 1..r * width + 3].copy_from_slice(&tod);
                    }
                }
            }
            Ok(())
        })?;

        let mut rows = Vec::with_capacity(b);
        for r in 0..b {
            if !self.alive[r] {
                continue;
            }
            if self.clock[r] > self.span {
                self.alive[r] = false;
                continue;
            }
            let row = &current[r * width..(r + 1) * width];
            // Slide the window: drop the oldest row, append this one.
            let win = &mut self.window[r * k * width..(r + 1) * k * width];
            win.copy_within(width.., 0);
            win[(k - 1) * width..].copy_from_slice(row);
            let valid = &mut self.valid[r * k..(r + 1) * k];
            valid.copy_within(1.., 0);
            valid[k - 1] = 1.0;
            rows.push(SampledRow {
                stream: r,
                slots: row.to_vec(),
                epoch: self.start + self.clock[r],
            });
        }
        Ok(rows)
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        t.to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1),
    )?)
}

/// Draws an index from unnormalised weights, only where `allowed` is 1.
fn pick(weights: &[f32], allowed: Option<&[f32]>, rng: &mut impl Rng) -> usize {
    let weight = |i: usize| weights[i] * allowed.map_or(1.0, |a| a[i]);
    let total: f32 = (0..weights.len()).map(weight).sum();
    if total.is_nan() || total <= 0.0 {
        // Every allowed class underflowed to zero probability: any allowed class, uniformly.
        let open: Vec<usize> = (0..weights.len())
            .filter(|&i| allowed.is_none_or(|a| a[i] > 0.0))
            .collect();
        return open
            .get(rng.random_range(0..open.len().max(1)))
            .copied()
            .unwrap_or(0);
    }
    let mut u = rng.random::<f32>() * total;
    let mut last = 0;
    for i in 0..weights.len() {
        let w = weight(i);
        if w > 0.0 {
            last = i;
            if u < w {
                return i;
            }
            u -= w;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::fixtures::{
        assert_drawn_within, assert_own_values_kept, categorical, fixed_mixture_net, order,
        small_config, tally_capped_gaps,
    };
    use tch::Device;

    /// The libtorch sampler (the GPU path, run here on the CPU) samples a row per live stream
    /// per step, each softmax slot within its classes and never a banned class, and each row
    /// carries the time of day of the model's clock at its own time.
    #[test]
    fn torch_sampler_steps_every_stream() {
        let mut pr = categorical("pr", &[4]);
        pr.heads[0] = HeadSpec::Softmax {
            classes: 4,
            banned: vec![3],
        };
        let config = small_config(vec![order(), pr], 3);
        let net = StanNet::new(config, Device::Cpu);
        let clock = Clock {
            period: 2.0 * 86_400.0,
            origin: 0.0,
        };
        let hourly = Box::new(|_| 3_600.0);
        let mut sampler = Sampler::new(net, 6, 0.0, 1e9, 1, hourly, clock, &[]);
        for step in 1..=30 {
            let rows = sampler.step().unwrap();
            assert_eq!(rows.len(), 6, "step {step}");
            for row in rows {
                assert!((0.0..3.0).contains(&row.slots[3]), "{:?}", row.slots);
                assert_eq!(row.epoch, step as f64 * 3_600.0);
                assert_eq!(row.slots[1..3], clock.features(row.epoch), "step {step}");
            }
        }
        // A day and six hours in, the daily clock would say six o'clock again.
        assert_ne!(
            clock.features(30.0 * 3_600.0),
            Clock::DAILY.features(30.0 * 3_600.0)
        );
        assert!(!sampler.finished());
    }

    /// As on the CPU: a bounded stream's gaps stay within its bound, an unbounded one's do not.
    #[test]
    fn torch_sampler_bounds_a_streams_gaps() {
        tch::manual_seed(4);
        let net = StanNet::new(
            small_config(vec![order(), categorical("pr", &[3])], 3),
            Device::Cpu,
        );
        let bound = -0.5;
        let mut sampler = Sampler::new(net, 2, 0.0, 1e9, 3, Box::new(|_| 1.0), Clock::DAILY, &[])
            .waiting_at_most(|s| if s == 0 { bound } else { f32::INFINITY });
        let mut tally = (0, 0);
        for _ in 0..100 {
            let rows = sampler.step().unwrap();
            tally_capped_gaps(
                rows.iter().map(|r| (r.stream, r.slots[0])),
                bound,
                &mut tally,
            );
        }
        let (bounded, beyond) = tally;
        assert_eq!(bounded, 100);
        assert!(
            beyond > 10,
            "the unbounded stream drew {beyond} of 100 gaps above the bound"
        );
    }

    /// As on the CPU: value heads keep to their column's training range.
    #[test]
    fn torch_sampler_draws_values_within_their_range() {
        let draws = |ranges: &[ValueRange]| -> Vec<f32> {
            let net = fixed_mixture_net(3);
            let mut sampler =
                Sampler::new(net, 2, 0.0, 1e9, 3, Box::new(|_| 1.0), Clock::DAILY, &[])
                    .drawing_within(ranges);
            (0..200)
                .flat_map(|_| sampler.step().unwrap())
                .map(|row| row.slots[3])
                .collect()
        };
        let bounded = draws(&[ValueRange {
            slot: 3,
            low: -1.5,
            high: 3.5,
            ..ValueRange::unbounded(3)
        }]);
        assert_eq!(bounded.len(), 400);
        assert_drawn_within(&bounded, &draws(&[]));
    }

    /// As on the CPU: a stream's flagged ("own") address is drawn once, then kept.
    #[test]
    fn torch_sampler_keeps_a_streams_own_address() {
        tch::manual_seed(4);
        let sa = crate::model::AttributeSpec {
            own_value: true,
            ..categorical("sa", &[2, 6, 6])
        };
        let net = StanNet::new(small_config(vec![order(), sa], 3), Device::Cpu);
        let mut sampler = Sampler::new(net, 4, 0.0, 1e9, 2, Box::new(|_| 1.0), Clock::DAILY, &[]);
        let mut own: Vec<Vec<Vec<f32>>> = vec![vec![]; 4];
        let mut others = vec![];
        for _ in 0..40 {
            for row in sampler.step().unwrap() {
                if row.slots[3] == 1.0 {
                    own[row.stream].push(row.slots[4..6].to_vec());
                } else {
                    others.push(row.slots[4..6].to_vec());
                }
            }
        }
        assert_own_values_kept(&own, others);
    }
}
