//! Fidelity and privacy of a synthetic sample against real held-out rows (`stan_evaluate`):
//! per-column divergences, the paper's domain checks (Table 5), top ports, per-stream structure,
//! and exact-match / rare-value privacy figures. Pure functions over columns of values, so they
//! are tested without PostgreSQL and shared with the HTML report.

use crate::codec::{Codec, ColumnValues, TableCodec};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Bins of the numeric histograms, as in the STAN paper's evaluation code.
pub const JSD_BINS: usize = 304;

/// Rows of one table: one `ColumnValues` per codec column, and each row's stream (empty: one
/// stream).
pub struct Rows<'a> {
    pub values: &'a [ColumnValues],
    pub streams: &'a [u64],
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        self.values.first().map_or(0, |v| v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One result row of `stan_evaluate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub metric: String,
    pub column: String,
    pub synthetic: Option<f64>,
    /// The real baseline: the held-out rows' own value, or for divergences, the divergence
    /// between the real training rows and the held-out rows.
    pub real: Option<f64>,
    pub detail: String,
}

fn metric(
    metric: &str,
    column: &str,
    synthetic: Option<f64>,
    real: Option<f64>,
    detail: String,
) -> Metric {
    Metric {
        metric: metric.into(),
        column: column.into(),
        synthetic,
        real,
        detail,
    }
}

/// A column's values as numbers (IPv4 addresses as their 32-bit value), None for NULL.
pub fn numbers(v: &ColumnValues) -> Vec<Option<f64>> {
    match v {
        ColumnValues::Float(x) => x.iter().map(|v| v.filter(|f| f.is_finite())).collect(),
        ColumnValues::Int(x) => x.iter().map(|v| v.map(|i| i as f64)).collect(),
        ColumnValues::Text(x) => x
            .iter()
            .map(|v| v.as_deref().and_then(|s| s.parse().ok()))
            .collect(),
    }
}

/// A column's values as exact keys (for categories, ports, addresses), None for NULL.
pub fn keys(v: &ColumnValues) -> Vec<Option<String>> {
    match v {
        ColumnValues::Float(x) => x.iter().map(|v| v.map(|f| f.to_string())).collect(),
        ColumnValues::Int(x) => x.iter().map(|v| v.map(|i| i.to_string())).collect(),
        ColumnValues::Text(x) => x.clone(),
    }
}

fn present<T: Clone>(v: &[Option<T>]) -> Vec<T> {
    v.iter().flatten().cloned().collect()
}

/// Jensen–Shannon divergence (base 2, in [0, 1]) of two histograms with +1 smoothing per bin.
pub fn jsd_counts(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb): (f64, f64) = (
        a.iter().map(|x| x + 1.0).sum(),
        b.iter().map(|x| x + 1.0).sum(),
    );
    let mut d = 0.0;
    for (x, y) in a.iter().zip(b) {
        let p = (x + 1.0) / sa;
        let q = (y + 1.0) / sb;
        let m = 0.5 * (p + q);
        d += 0.5 * p * (p / m).log2() + 0.5 * q * (q / m).log2();
    }
    d.max(0.0)
}

/// The days of the week as `flows_over_time` counts them.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Flows per hour of the day and per day of the week (UTC, Monday first) from the order column,
/// and the days the rows span.
pub fn flows_over_time(t: &Rows, order: usize) -> ([f64; 24], [f64; 7], f64) {
    let (mut hours, mut days) = ([0.0; 24], [0.0; 7]);
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in numbers(&t.values[order]).into_iter().flatten() {
        hours[((x / 3600.0).floor().rem_euclid(24.0) as usize).min(23)] += 1.0;
        // 1970-01-01 was a Thursday.
        days[(((x / 86400.0).floor() + 3.0).rem_euclid(7.0) as usize).min(6)] += 1.0;
        first = first.min(x);
        last = last.max(x);
    }
    (hours, days, ((last - first) / 86400.0).max(0.0))
}

/// The smallest and largest value of some samples.
pub fn range(samples: &[&[f64]]) -> (f64, f64) {
    let all = || samples.iter().flat_map(|s| s.iter().copied());
    (
        all().fold(f64::INFINITY, f64::min),
        all().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Histograms of two samples over `bins` equal-width bins spanning both.
pub fn histograms(a: &[f64], b: &[f64], bins: usize) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let (lo, hi) = range(&[a, b]);
    histograms_over(a, b, bins, lo, hi)
}

/// Histograms of two samples over `bins` equal-width bins spanning [lo, hi].
fn histograms_over(
    a: &[f64],
    b: &[f64],
    bins: usize,
    lo: f64,
    hi: f64,
) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let fill = |xs: &[f64]| {
        let mut h = vec![0.0; bins];
        for x in xs {
            let i = (((x - lo).max(0.0) / width) as usize).min(bins - 1);
            h[i] += 1.0;
        }
        h
    };
    (fill(a), fill(b), lo, hi)
}

/// JSD of two numeric samples over 304 equal-width bins spanning both (None when either is
/// empty).
pub fn jsd_numeric(a: &[f64], b: &[f64]) -> Option<f64> {
    let (lo, hi) = range(&[a, b]);
    jsd_numeric_over(a, b, lo, hi)
}

/// JSD over 304 equal-width bins spanning [lo, hi]: the synthetic and the baseline divergence use
/// one range (of synthetic, held-out and training values), so they compare like with like.
pub fn jsd_numeric_over(a: &[f64], b: &[f64], lo: f64, hi: f64) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (ha, hb, _, _) = histograms_over(a, b, JSD_BINS, lo, hi);
    Some(jsd_counts(&ha, &hb))
}

/// JSD of two categorical samples over the union of their values.
pub fn jsd_categorical(a: &[String], b: &[String]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for v in a.iter().chain(b) {
        let n = index.len();
        index.entry(v.as_str()).or_insert(n);
    }
    let count = |xs: &[String]| {
        let mut h = vec![0.0; index.len()];
        for v in xs {
            h[index[v.as_str()]] += 1.0;
        }
        h
    };
    Some(jsd_counts(&count(a), &count(b)))
}

/// First Wasserstein distance between two empirical distributions.
pub fn wasserstein(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    // Integrate |F_a - F_b| over the merged support.
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_by(f64::total_cmp);
    let (mut i, mut j, mut total) = (0usize, 0usize, 0.0);
    for w in all.windows(2) {
        while i < a.len() && a[i] <= w[0] {
            i += 1;
        }
        while j < b.len() && b[j] <= w[0] {
            j += 1;
        }
        let fa = i as f64 / a.len() as f64;
        let fb = j as f64 / b.len() as f64;
        total += (fa - fb).abs() * (w[1] - w[0]);
    }
    Some(total)
}

/// What a column is for, by codec kind and (for the domain checks) by its usual NetFlow names.
#[derive(Default)]
struct Roles {
    order: Option<usize>,
    protocol: Option<usize>,
    flags: Option<usize>,
    packets: Option<usize>,
    bytes: Option<usize>,
    src_port: Option<usize>,
    dst_port: Option<usize>,
    src_ip: Option<usize>,
    dst_ip: Option<usize>,
}

fn named(name: &str, names: &[&str]) -> bool {
    names.contains(&name.to_ascii_lowercase().as_str())
}

fn roles(codec: &TableCodec) -> Roles {
    let mut r = Roles::default();
    let mut ports = vec![];
    let mut ips = vec![];
    for (i, c) in codec.columns.iter().enumerate() {
        match &c.codec {
            Codec::Gap { .. } => r.order = Some(i),
            Codec::Category { .. } if named(&c.name, &["pr", "proto", "protocol"]) => {
                r.protocol = Some(i)
            }
            Codec::Category { .. } if named(&c.name, &["flg", "flags", "tcp_flags"]) => {
                r.flags = Some(i)
            }
            Codec::Count { .. } | Codec::Continuous { .. }
                if named(&c.name, &["pkt", "pkts", "packets", "ipkt", "in_pkts"]) =>
            {
                r.packets = Some(i)
            }
            Codec::Count { .. } | Codec::Continuous { .. }
                if named(&c.name, &["byt", "bytes", "ibyt", "in_bytes", "octets"]) =>
            {
                r.bytes = Some(i)
            }
            Codec::Port { .. } => {
                if named(
                    &c.name,
                    &["sp", "sport", "src_port", "srcport", "l4_src_port"],
                ) {
                    r.src_port = Some(i)
                } else if named(
                    &c.name,
                    &["dp", "dport", "dst_port", "dstport", "l4_dst_port"],
                ) {
                    r.dst_port = Some(i)
                }
                ports.push(i)
            }
            Codec::Ipv4 { .. } => {
                if named(
                    &c.name,
                    &["sa", "src", "srcaddr", "src_ip", "saddr", "srcip"],
                ) {
                    r.src_ip = Some(i)
                } else if named(
                    &c.name,
                    &["da", "dst", "dstaddr", "dst_ip", "daddr", "dstip"],
                ) {
                    r.dst_ip = Some(i)
                }
                ips.push(i)
            }
            _ => {}
        }
    }
    // Unusual names: the first port/address is the source, the second the destination.
    if ports.len() == 2 && r.src_port.is_none() && r.dst_port.is_none() {
        (r.src_port, r.dst_port) = (Some(ports[0]), Some(ports[1]));
    }
    if ips.len() == 2 && r.src_ip.is_none() && r.dst_ip.is_none() {
        (r.src_ip, r.dst_ip) = (Some(ips[0]), Some(ips[1]));
    }
    r
}

fn protocol_of(v: Option<&str>) -> Option<&'static str> {
    match v.map(|s| s.trim().to_ascii_uppercase()).as_deref() {
        Some("TCP") | Some("6") => Some("TCP"),
        Some("UDP") | Some("17") => Some("UDP"),
        _ => None,
    }
}

fn has_flags(v: Option<&str>) -> bool {
    v.is_some_and(|s| {
        s.chars()
            .any(|c| c != '.' && c != '0' && !c.is_whitespace())
    })
}

/// Share of rows passing `check` among the rows it applies to (`check` returns None when it
/// does not apply); with the number of rows it applied to.
fn pass_rate(n: usize, check: impl Fn(usize) -> Option<bool>) -> (Option<f64>, usize) {
    let (mut applied, mut passed) = (0usize, 0usize);
    for i in 0..n {
        if let Some(ok) = check(i) {
            applied += 1;
            passed += usize::from(ok);
        }
    }
    (
        (applied > 0).then(|| passed as f64 / applied as f64),
        applied,
    )
}

/// The five domain checks of the paper's Table 5, as pass rates: (name, columns, rate, rows).
fn domain_checks(codec: &TableCodec, t: &Rows) -> Vec<(&'static str, String, Option<f64>, usize)> {
    let r = roles(codec);
    let n = t.len();
    let num = |i: Option<usize>| i.map(|i| numbers(&t.values[i]));
    let key = |i: Option<usize>| i.map(|i| keys(&t.values[i]));
    let name = |i: Option<usize>| i.map_or(String::new(), |i| codec.columns[i].name.clone());
    let (proto, flags) = (key(r.protocol), key(r.flags));
    let (pkt, byt) = (num(r.packets), num(r.bytes));
    let (sp, dp) = (num(r.src_port), num(r.dst_port));
    let (sa, da) = (num(r.src_ip), num(r.dst_ip));
    let proto_at = |i: usize| proto.as_ref().and_then(|p| protocol_of(p[i].as_deref()));
    let mut out = vec![];
    if sa.is_some() || da.is_some() {
        let (rate, rows) = pass_rate(n, |i| {
            // IPv6 addresses are read as -1: not IPv4, so the check does not apply to them.
            let src_ok = sa
                .as_ref()
                .and_then(|s| s[i])
                .filter(|a| *a >= 0.0)
                .map(|a| {
                    let first = (a as u64 >> 24) as u8;
                    !(224..=239).contains(&first) && first != 255
                });
            let dst_ok = da
                .as_ref()
                .and_then(|d| d[i])
                .filter(|a| *a >= 0.0)
                .map(|a| (a as u64 >> 24) != 0);
            match (src_ok, dst_ok) {
                (None, None) => None,
                (s, d) => Some(s.unwrap_or(true) && d.unwrap_or(true)),
            }
        });
        let cols = [name(r.src_ip), name(r.dst_ip)]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        out.push((
            "1 valid addresses (source not multicast 224-239.x or broadcast 255.x, destination not 0.x)",
            cols,
            rate,
            rows,
        ));
    }
    if let (Some(pkt), Some(byt)) = (&pkt, &byt) {
        if proto.is_some() {
            let cols = format!("{},{},{}", name(r.protocol), name(r.packets), name(r.bytes));
            let per_packet = |p: &str| if p == "TCP" { 40.0 } else { 28.0 };
            let (rate, rows) = pass_rate(n, |i| {
                let p = proto_at(i)?;
                Some(byt[i]? >= per_packet(p) * pkt[i]?)
            });
            out.push((
                "2 minimum bytes per packet (TCP >= 40, UDP >= 28)",
                cols.clone(),
                rate,
                rows,
            ));
            let (rate, rows) = pass_rate(n, |i| {
                let p = proto_at(i)?;
                let (b, k) = (byt[i]?, pkt[i]?);
                Some(b >= per_packet(p) * k && b <= 65535.0 * k)
            });
            out.push((
                "3 bytes within [40, 65535] per packet for TCP ([28, 65535] for UDP)",
                cols,
                rate,
                rows,
            ));
        }
    }
    if let (Some(flags), Some(_)) = (&flags, &proto) {
        let (rate, rows) = pass_rate(n, |i| {
            let p = proto.as_ref()?[i].as_deref()?;
            (protocol_of(Some(p)) != Some("TCP")).then(|| !has_flags(flags[i].as_deref()))
        });
        out.push((
            "4 no TCP flags on non-TCP flows",
            format!("{},{}", name(r.protocol), name(r.flags)),
            rate,
            rows,
        ));
    }
    if proto.is_some() && (sp.is_some() || dp.is_some()) {
        let web = |v: &Option<Vec<Option<f64>>>, i: usize| {
            v.as_ref()
                .and_then(|v| v[i])
                .is_some_and(|p| p == 80.0 || p == 443.0)
        };
        let (rate, rows) = pass_rate(n, |i| {
            (web(&sp, i) || web(&dp, i)).then(|| proto_at(i) == Some("TCP"))
        });
        let cols = [name(r.src_port), name(r.dst_port), name(r.protocol)]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        out.push(("5 ports 80 and 443 carry TCP", cols, rate, rows));
    }
    out
}

/// Rows of each stream in time order (by the order column when there is one).
fn streams_in_order(t: &Rows, order: Option<usize>) -> Vec<Vec<usize>> {
    let mut by_stream: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..t.len() {
        by_stream
            .entry(t.streams.get(i).copied().unwrap_or(0))
            .or_default()
            .push(i);
    }
    let time = order.map(|o| numbers(&t.values[o]));
    let mut out: Vec<Vec<usize>> = by_stream.into_values().collect();
    if let Some(time) = &time {
        for rows in &mut out {
            rows.sort_by(|&a, &b| {
                time[a]
                    .unwrap_or(f64::NAN)
                    .total_cmp(&time[b].unwrap_or(f64::NAN))
            });
        }
    }
    out.sort();
    out
}

/// Gaps in seconds between consecutive rows of each stream.
pub fn stream_gaps(t: &Rows, order: usize) -> Vec<f64> {
    let time = numbers(&t.values[order]);
    let mut gaps = vec![];
    for rows in streams_in_order(t, Some(order)) {
        for w in rows.windows(2) {
            if let (Some(a), Some(b)) = (time[w[0]], time[w[1]]) {
                gaps.push(b - a);
            }
        }
    }
    gaps
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Mean over streams (with at least 10 rows and some variation) of the lag-1 autocorrelation of
/// log(1 + value); with the number of streams it averaged.
pub fn lag1_autocorrelation(t: &Rows, column: usize, order: Option<usize>) -> (Option<f64>, usize) {
    let v = numbers(&t.values[column]);
    let mut sum = 0.0;
    let mut count = 0usize;
    for rows in streams_in_order(t, order) {
        let series: Vec<f64> = rows
            .iter()
            .filter_map(|&i| v[i])
            .map(|x| x.max(0.0).ln_1p())
            .collect();
        if series.len() < 10 {
            continue;
        }
        if let Some(r) = pearson(&series[..series.len() - 1], &series[1..]) {
            sum += r;
            count += 1;
        }
    }
    ((count > 0).then(|| sum / count as f64), count)
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
}

fn tuple_hashes(codec: &TableCodec, t: &Rows, skip: Option<usize>) -> Vec<u64> {
    let cols: Vec<Vec<Option<String>>> = codec
        .columns
        .iter()
        .enumerate()
        .filter(|(i, c)| Some(*i) != skip && !matches!(c.codec, Codec::Skip))
        .map(|(i, _)| {
            crate::interrupt::check();
            keys(&t.values[i])
        })
        .collect();
    (0..t.len())
        .map(|r| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in &cols {
                c[r].hash(&mut h);
            }
            h.finish()
        })
        .collect()
}

/// Top destination ports of the three most common protocols in the held-out rows, with each
/// port's share of that protocol's flows: (protocol, port, synthetic share, real share, rank).
pub fn top_ports(
    codec: &TableCodec,
    synthetic: &Rows,
    holdout: &Rows,
    per_protocol: usize,
) -> Vec<(String, String, f64, f64, usize)> {
    let r = roles(codec);
    let (Some(proto), Some(dport)) = (r.protocol, r.dst_port) else {
        return vec![];
    };
    let table = |t: &Rows| -> HashMap<String, HashMap<String, f64>> {
        let (p, d) = (keys(&t.values[proto]), keys(&t.values[dport]));
        let mut m: HashMap<String, HashMap<String, f64>> = HashMap::new();
        for (p, d) in p.into_iter().zip(d) {
            if let (Some(p), Some(d)) = (p, d) {
                *m.entry(p).or_default().entry(d).or_default() += 1.0;
            }
        }
        m
    };
    let (real, synth) = (table(holdout), table(synthetic));
    let mut protocols: Vec<(&String, f64)> =
        real.iter().map(|(p, m)| (p, m.values().sum())).collect();
    protocols.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = vec![];
    for (p, total) in protocols.into_iter().take(3) {
        let mut ports: Vec<(&String, &f64)> = real[p].iter().collect();
        ports.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let synth_p = synth.get(p);
        let synth_total: f64 = synth_p.map_or(0.0, |m| m.values().sum());
        for (rank, (port, n)) in ports.into_iter().take(per_protocol).enumerate() {
            let s = synth_p.and_then(|m| m.get(port)).copied().unwrap_or(0.0);
            out.push((
                p.clone(),
                port.clone(),
                if synth_total > 0.0 {
                    s / synth_total
                } else {
                    0.0
                },
                n / total,
                rank + 1,
            ));
        }
    }
    out
}

/// Every metric of `stan_evaluate`. `training` (the model's source rows, read with the caller's
/// rights) gives the divergence baselines and the exact-match figures; without it those are NULL.
pub fn evaluate(
    codec: &TableCodec,
    synthetic: &Rows,
    holdout: &Rows,
    training: Option<&Rows>,
) -> Vec<Metric> {
    let mut out = vec![metric(
        "rows",
        "",
        Some(synthetic.len() as f64),
        Some(holdout.len() as f64),
        "synthetic rows generated over the held-out span / held-out rows".into(),
    )];
    let r = roles(codec);
    let mut jsd_sum = (0.0, 0.0, 0usize, true);
    for (i, c) in codec.columns.iter().enumerate() {
        crate::interrupt::check();
        let categorical = matches!(
            c.codec,
            Codec::Category { .. } | Codec::Port { .. } | Codec::Ipv4 { .. }
        );
        let continuous = matches!(c.codec, Codec::Count { .. } | Codec::Continuous { .. });
        if categorical {
            let (s, h) = (
                present(&keys(&synthetic.values[i])),
                present(&keys(&holdout.values[i])),
            );
            let base = training.and_then(|t| jsd_categorical(&present(&keys(&t.values[i])), &h));
            let value = jsd_categorical(&s, &h);
            add_jsd(&mut jsd_sum, value, base);
            out.push(metric(
                "jsd",
                &c.name,
                value,
                base,
                "Jensen-Shannon divergence of exact values; real: training rows vs held-out rows"
                    .into(),
            ));
        } else if continuous {
            let (s, h) = (
                present(&numbers(&synthetic.values[i])),
                present(&numbers(&holdout.values[i])),
            );
            let train = training.map(|t| present(&numbers(&t.values[i])));
            let (lo, hi) = range(&[&s, &h, train.as_deref().unwrap_or(&[])]);
            let value = jsd_numeric_over(&s, &h, lo, hi);
            let base = train.as_ref().and_then(|t| jsd_numeric_over(t, &h, lo, hi));
            add_jsd(&mut jsd_sum, value, base);
            out.push(metric("jsd", &c.name, value, base, format!("Jensen-Shannon divergence over {JSD_BINS} equal-width bins, +1 smoothing; real: training rows vs held-out rows")));
            out.push(metric(
                "wasserstein",
                &c.name,
                wasserstein(&s, &h),
                train.as_ref().and_then(|t| wasserstein(t, &h)),
                "first Wasserstein distance; real: training rows vs held-out rows".into(),
            ));
            // Per-row divergences hide a volume that is too low when only the rare large flows
            // are missing; the sum over the same span shows it.
            if matches!(c.codec, Codec::Count { .. }) {
                out.push(metric(
                    "total",
                    &c.name,
                    Some(s.iter().sum()),
                    Some(h.iter().sum()),
                    "sum over the span (for packets and bytes: the traffic volume)".into(),
                ));
            }
        }
        if c.nullable {
            let nulls = |t: &Rows| {
                let v = keys(&t.values[i]);
                (!v.is_empty())
                    .then(|| v.iter().filter(|x| x.is_none()).count() as f64 / v.len() as f64)
            };
            out.push(metric(
                "null_share",
                &c.name,
                nulls(synthetic),
                nulls(holdout),
                "share of NULL values".into(),
            ));
        }
    }
    if jsd_sum.2 > 0 {
        let base = jsd_sum.3.then_some(jsd_sum.1 / jsd_sum.2 as f64);
        out.push(metric(
            "mean_jsd",
            "*",
            Some(jsd_sum.0 / jsd_sum.2 as f64),
            base,
            format!(
                "mean over {} columns; target: synthetic <= 1.2 x real",
                jsd_sum.2
            ),
        ));
    }
    let (checks_s, checks_h) = (
        domain_checks(codec, synthetic),
        domain_checks(codec, holdout),
    );
    for (s, h) in checks_s.into_iter().zip(checks_h) {
        out.push(metric(
            "domain_check",
            &s.1,
            s.2,
            h.2,
            format!(
                "{}: pass rate over {} synthetic / {} held-out rows it applies to",
                s.0, s.3, h.3
            ),
        ));
    }
    for (p, port, s, h, rank) in top_ports(codec, synthetic, holdout, 5) {
        let col = r
            .dst_port
            .map_or(String::new(), |i| codec.columns[i].name.clone());
        out.push(metric(
            "top_dst_port",
            &col,
            Some(s),
            Some(h),
            format!("{p} port {port} (#{rank} in held-out {p} flows): share of {p} flows"),
        ));
    }
    if let Some(o) = r.order {
        let name = &codec.columns[o].name;
        let (mut gs, mut gh) = (stream_gaps(synthetic, o), stream_gaps(holdout, o));
        gs.sort_by(f64::total_cmp);
        gh.sort_by(f64::total_cmp);
        let log = |g: &[f64]| g.iter().map(|x| x.max(0.0).ln_1p()).collect::<Vec<_>>();
        let gt = training.map(|t| log(&stream_gaps(t, o)));
        let (ls, lh) = (log(&gs), log(&gh));
        let (lo, hi) = range(&[&ls, &lh, gt.as_deref().unwrap_or(&[])]);
        let base = gt.as_ref().and_then(|t| jsd_numeric_over(t, &lh, lo, hi));
        out.push(metric("gap_jsd", name, jsd_numeric_over(&ls, &lh, lo, hi), base, format!("JSD of log(1 + seconds between a stream's consecutive flows), {JSD_BINS} bins; real: training vs held-out")));
        // Traffic over time: a model that keeps each row right can still put the day's volume
        // in the wrong hours, or weekdays' volume on the weekend.
        let (hours_s, days_s, _) = flows_over_time(synthetic, o);
        let (hours_h, days_h, span_days) = flows_over_time(holdout, o);
        let trained = training.map(|t| flows_over_time(t, o));
        out.push(metric(
            "hourly_jsd",
            name,
            Some(jsd_counts(&hours_s, &hours_h)),
            trained.as_ref().map(|t| jsd_counts(&t.0, &hours_h)),
            "JSD of flows per hour of the day (UTC), +1 smoothing; real: training vs held-out"
                .into(),
        ));
        for (hour, (s, h)) in hours_s.iter().zip(&hours_h).enumerate() {
            if s + h > 0.0 {
                out.push(metric(
                    "flows_per_hour",
                    &format!("{hour:02}:00"),
                    Some(*s),
                    Some(*h),
                    "flows starting in this hour of the day (UTC) over the span".into(),
                ));
            }
        }
        if span_days >= 7.0 {
            out.push(metric(
                "weekday_jsd",
                name,
                Some(jsd_counts(&days_s, &days_h)),
                trained.as_ref().map(|t| jsd_counts(&t.1, &days_h)),
                "JSD of flows per day of the week (UTC), +1 smoothing; real: training vs held-out"
                    .into(),
            ));
            for (day, label) in WEEKDAYS.iter().enumerate() {
                out.push(metric(
                    "flows_per_weekday",
                    label,
                    Some(days_s[day]),
                    Some(days_h[day]),
                    "flows starting on this day of the week (UTC) over the span".into(),
                ));
            }
        }
        for (q, label) in [(0.5, "gap_median_s"), (0.9, "gap_p90_s")] {
            out.push(metric(
                label,
                name,
                quantile(&gs, q),
                quantile(&gh, q),
                "seconds between a stream's consecutive flows".into(),
            ));
        }
    }
    if let Some(b) = r.bytes.or_else(|| {
        codec
            .columns
            .iter()
            .position(|c| matches!(c.codec, Codec::Count { .. }))
    }) {
        let (s, ns) = lag1_autocorrelation(synthetic, b, r.order);
        let (h, nh) = lag1_autocorrelation(holdout, b, r.order);
        // The training rows' own value shows how far the real traffic itself moved.
        let trained = training
            .and_then(|t| lag1_autocorrelation(t, b, r.order).0)
            .map_or(String::new(), |v| format!("; training rows: {v:.4}"));
        out.push(metric("lag1_autocorrelation", &codec.columns[b].name, s, h, format!("mean over streams of the lag-1 autocorrelation of log(1 + value) ({ns} synthetic / {nh} held-out streams with >= 10 rows{trained}); target: within 0.05")));
    }
    if let Some(t) = training {
        let known: HashSet<u64> = tuple_hashes(codec, t, r.order).into_iter().collect();
        let share = |x: &Rows| {
            let h = tuple_hashes(codec, x, r.order);
            (!h.is_empty())
                .then(|| h.iter().filter(|v| known.contains(v)).count() as f64 / h.len() as f64)
        };
        out.push(metric("exact_match_share", "*", share(synthetic), share(holdout), "share of rows equal to a training row in every modelled column but time; real: held-out rows; target: synthetic <= real".into()));
    }
    for (i, c) in codec.columns.iter().enumerate() {
        if let Codec::Category { values, .. } = &c.codec {
            let allowed: HashSet<&str> = values.iter().map(String::as_str).collect();
            let rare = |t: &Rows| {
                keys(&t.values[i])
                    .iter()
                    .flatten()
                    .filter(|v| !allowed.contains(v.as_str()))
                    .count() as f64
            };
            out.push(metric("rare_values_emitted", &c.name, Some(rare(synthetic)), Some(rare(holdout)), "rows with a value seen fewer than min_category_count times in training (synthetic must be 0)".into()));
        }
    }
    out
}

fn add_jsd(acc: &mut (f64, f64, usize, bool), value: Option<f64>, base: Option<f64>) {
    if let Some(v) = value {
        acc.0 += v;
        acc.2 += 1;
        match base {
            Some(b) => acc.1 += b,
            None => acc.3 = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flows are counted by the hour and weekday they start (UTC), and the weekday figures
    /// appear only for a span of a week or more.
    #[test]
    fn traffic_over_time_is_counted_by_hour_and_weekday() {
        let monday = 1_460_332_800.0; // 2016-04-11 00:00 UTC, a Monday
        let times = |days: f64| -> ColumnValues {
            ColumnValues::Float(
                (0..(days as usize * 24))
                    .flat_map(|h| {
                        // Busy weekday afternoons, quiet weekends.
                        let day = h / 24;
                        let n = if day % 7 >= 5 {
                            1
                        } else if h % 24 >= 12 {
                            4
                        } else {
                            2
                        };
                        (0..n).map(move |i| Some(monday + h as f64 * 3600.0 + i as f64))
                    })
                    .collect(),
            )
        };
        let week = [times(14.0)];
        let rows = Rows {
            values: &week,
            streams: &[],
        };
        let (hours, days, span) = flows_over_time(&rows, 0);
        assert_eq!(days, [144.0, 144.0, 144.0, 144.0, 144.0, 48.0, 48.0]);
        assert_eq!(hours[0], 2.0 * 10.0 + 4.0);
        assert_eq!(hours[13], 4.0 * 10.0 + 4.0);
        assert!(span > 13.9);
        let day = [times(1.0)];
        let (_, _, short) = flows_over_time(
            &Rows {
                values: &day,
                streams: &[],
            },
            0,
        );
        assert!(short < 1.0);
    }

    #[test]
    fn divergences_behave() {
        let a: Vec<f64> = (0..1000).map(|i| (i % 100) as f64).collect();
        let shifted: Vec<f64> = a.iter().map(|x| x + 50.0).collect();
        assert!(jsd_numeric(&a, &a).unwrap() < 1e-9);
        let d = jsd_numeric(&a, &shifted).unwrap();
        assert!(d > 0.2 && d < 0.5, "half the mass overlaps: {d}");
        assert!((wasserstein(&a, &shifted).unwrap() - 50.0).abs() < 1e-6);
        assert_eq!(wasserstein(&a, &a), Some(0.0));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(jsd_categorical(&s(&["a", "b"]), &s(&["a", "b"])).unwrap() < 1e-9);
        assert!(jsd_categorical(&s(&["a"; 50]), &s(&["b"; 50])).unwrap() > 0.8);
    }
}
