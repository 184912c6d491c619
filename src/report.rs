//! `stan_report`: one self-contained page (inline SVG, no scripts, no external assets) with a
//! real-vs-synthetic chart per modelled column, destination-port bars per protocol, the domain
//! checks and the privacy figures. Written as well-formed XHTML so tests can parse it.

use crate::codec::{Codec, TableCodec};
use crate::evaluate::{
    flows_over_time, keys, numbers, stream_gaps, top_ports, Metric, Rows, WEEKDAYS,
};
use std::collections::HashMap;
use std::fmt::Write;

const REAL: &str = "#2b6cb0";
const SYNTHETIC: &str = "#dd6b20";
const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 200.0;
const BINS: usize = 40;
const TOP_VALUES: usize = 12;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.4}"),
    }
}

/// Grouped bars (real, synthetic) of two distributions given as shares per label.
fn bars_svg(labels: &[String], real: &[f64], synthetic: &[f64], x_title: &str) -> String {
    let n = labels.len().max(1) as f64;
    let top = real
        .iter()
        .chain(synthetic)
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    // Room below the axis and to the right for the slanted labels (9 px type, about 5.4 px a
    // character, at 35°: 3.1 px down and 4.5 px across per character), so that an address is not
    // cut off at the chart's edges.
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let left = 40.0;
    let bottom = (16.0 + 3.1 * longest).clamp(46.0, 80.0);
    // The last label starts 0.2 of a slot into its slot: right ≥ reach − 0.8 slot, solved for it.
    let reach = 4.5 * longest;
    let right = ((reach - 0.8 * (WIDTH - left) / n) / (1.0 - 0.8 / n)).clamp(10.0, 80.0);
    // Bars start below the two captions at the top.
    let plot_h = HEIGHT - bottom - 18.0;
    let slot = (WIDTH - left - right) / n;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">"#
    );
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/><text x="{left}" y="12" font-size="10">share (max {top:.3})</text>"##,
        y = HEIGHT - bottom,
        x2 = WIDTH - 10.0
    );
    for (i, label) in labels.iter().enumerate() {
        let x = left + slot * i as f64;
        for (k, (v, colour)) in [(real[i], REAL), (synthetic[i], SYNTHETIC)]
            .iter()
            .enumerate()
        {
            let h = plot_h * v / top;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {:.4}</title></rect>"#,
                x + slot * (0.1 + 0.4 * k as f64),
                HEIGHT - bottom - h,
                (slot * 0.4).max(0.5),
                h,
                escape(label),
                v
            );
        }
        // Label every bar when few, else about ten of them.
        let every = (labels.len() / 10).max(1);
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" transform="rotate(35 {:.1} {:.1})">{}</text>"#,
                x + slot * 0.2,
                HEIGHT - bottom + 12.0,
                x + slot * 0.2,
                HEIGHT - bottom + 12.0,
                escape(label)
            );
        }
    }
    // Top right, where the slanted labels cannot run into it.
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="12" font-size="10" text-anchor="end">{}</text></svg>"#,
        WIDTH - 10.0,
        escape(x_title)
    );
    s
}

fn shares(h: &[f64]) -> Vec<f64> {
    let total: f64 = h.iter().sum();
    h.iter()
        .map(|x| if total > 0.0 { x / total } else { 0.0 })
        .collect()
}

/// Histogram chart of two numeric samples over equal-width bins.
fn numeric_chart(real: &[f64], synthetic: &[f64], x_title: &str) -> String {
    let (hr, hs, lo, hi) = crate::evaluate::histograms(real, synthetic, BINS);
    let width = (hi - lo) / BINS as f64;
    let labels: Vec<String> = (0..BINS)
        .map(|i| format!("{:.3}", lo + width * i as f64))
        .collect();
    bars_svg(&labels, &shares(&hr), &shares(&hs), x_title)
}

/// Bar chart of the most common values (by the real rows) of two categorical samples.
fn category_chart(real: &[String], synthetic: &[String], x_title: &str) -> String {
    fn count(v: &[String]) -> HashMap<&str, f64> {
        let mut m: HashMap<&str, f64> = HashMap::new();
        for x in v {
            *m.entry(x.as_str()).or_default() += 1.0;
        }
        m
    }
    let (cr, cs) = (count(real), count(synthetic));
    let mut labels: Vec<&str> = cr.keys().copied().collect();
    labels.sort_by(|a, b| cr[b].total_cmp(&cr[a]).then(a.cmp(b)));
    labels.truncate(TOP_VALUES);
    let (tr, ts) = (real.len().max(1) as f64, synthetic.len().max(1) as f64);
    bars_svg(
        &labels.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &labels.iter().map(|l| cr[l] / tr).collect::<Vec<_>>(),
        &labels
            .iter()
            .map(|l| cs.get(l).copied().unwrap_or(0.0) / ts)
            .collect::<Vec<_>>(),
        x_title,
    )
}

fn ipv4(v: &str) -> String {
    match v.parse::<i64>() {
        Ok(a) if (0..=u32::MAX as i64).contains(&a) => {
            std::net::Ipv4Addr::from(a as u32).to_string()
        }
        _ => v.to_string(),
    }
}

fn log1p(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.max(0.0).ln_1p()).collect()
}

fn table(s: &mut String, header: &[&str], rows: &[Vec<String>]) {
    s.push_str("<table><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", escape(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
}

fn metric_rows(metrics: &[Metric], names: &[&str]) -> Vec<Vec<String>> {
    metrics
        .iter()
        .filter(|m| names.contains(&m.metric.as_str()))
        .map(|m| {
            vec![
                m.metric.clone(),
                m.column.clone(),
                fmt(m.synthetic),
                fmt(m.real),
                m.detail.clone(),
            ]
        })
        .collect()
}

/// The report page.
pub fn html(
    model: &str,
    holdout_name: &str,
    codec: &TableCodec,
    synthetic: &Rows,
    holdout: &Rows,
    training: Option<&Rows>,
    metrics: &[Metric],
) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>");
    let _ = write!(s, "<title>stan report: {}</title>", escape(model));
    s.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}\
         figure{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top}\
         figcaption{font-weight:600;margin-bottom:.3em}\
         table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em;text-align:left}\
         .key span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>stan report: model {}</h1><p>{} synthetic rows generated over the span of <code>{}</code> ({} held-out rows){}.</p>",
        escape(model),
        synthetic.len(),
        escape(holdout_name),
        holdout.len(),
        if training.is_some() { ", compared with the training rows for baselines" } else { "" }
    );
    let _ = write!(
        s,
        r#"<p class="key"><span style="background:{REAL}"></span>real (held-out)<span style="background:{SYNTHETIC}"></span>synthetic</p>"#
    );
    s.push_str("<h2>Columns</h2>");
    for (i, c) in codec.columns.iter().enumerate() {
        let (svg, what) = match &c.codec {
            Codec::Skip => continue,
            Codec::Gap { .. } => (
                numeric_chart(
                    &log1p(&stream_gaps(holdout, i)),
                    &log1p(&stream_gaps(synthetic, i)),
                    "ln(1 + seconds since the stream's previous flow)",
                ),
                "gaps between a stream's flows",
            ),
            Codec::Count { .. } => (
                numeric_chart(
                    &log1p(
                        &numbers(&holdout.values[i])
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>(),
                    ),
                    &log1p(
                        &numbers(&synthetic.values[i])
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>(),
                    ),
                    "ln(1 + value)",
                ),
                "count",
            ),
            Codec::Continuous { log, .. } => {
                let (r, y): (Vec<f64>, Vec<f64>) = (
                    numbers(&holdout.values[i]).into_iter().flatten().collect(),
                    numbers(&synthetic.values[i])
                        .into_iter()
                        .flatten()
                        .collect(),
                );
                if *log {
                    (
                        numeric_chart(&log1p(&r), &log1p(&y), "ln(1 + value)"),
                        "continuous",
                    )
                } else {
                    (numeric_chart(&r, &y, "value"), "continuous")
                }
            }
            Codec::Ipv4 { .. } => {
                let f = |t: &Rows| {
                    keys(&t.values[i])
                        .into_iter()
                        .flatten()
                        .map(|v| ipv4(&v))
                        .collect::<Vec<_>>()
                };
                (
                    category_chart(&f(holdout), &f(synthetic), "most common addresses"),
                    "IPv4 address",
                )
            }
            Codec::Port { .. } | Codec::Category { .. } => {
                let f = |t: &Rows| keys(&t.values[i]).into_iter().flatten().collect::<Vec<_>>();
                (
                    category_chart(&f(holdout), &f(synthetic), "most common values"),
                    if matches!(c.codec, Codec::Port { .. }) {
                        "port"
                    } else {
                        "category"
                    },
                )
            }
        };
        let jsd = metrics
            .iter()
            .find(|m| m.metric == "jsd" && m.column == c.name)
            .and_then(|m| m.synthetic);
        let _ = write!(
            s,
            r#"<figure class="chart" data-column="{}"><figcaption>{} <small>({what}{})</small></figcaption>{svg}</figure>"#,
            escape(&c.name),
            escape(&c.name),
            jsd.map_or(String::new(), |j| format!(", JSD {j:.4}"))
        );
    }
    let ports = top_ports(codec, synthetic, holdout, 8);
    if !ports.is_empty() {
        s.push_str("<h2>Top destination ports per protocol</h2>");
        let mut protocols: Vec<&String> = ports.iter().map(|p| &p.0).collect();
        protocols.dedup();
        for p in protocols {
            let rows: Vec<_> = ports.iter().filter(|x| &x.0 == p).collect();
            let svg = bars_svg(
                &rows.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
                &rows.iter().map(|x| x.3).collect::<Vec<_>>(),
                &rows.iter().map(|x| x.2).collect::<Vec<_>>(),
                "destination port (share of the protocol's flows)",
            );
            let _ = write!(
                s,
                r#"<figure class="ports" data-protocol="{}"><figcaption>{}</figcaption>{svg}</figure>"#,
                escape(p),
                escape(p)
            );
        }
    }
    if let Some(order) = codec
        .columns
        .iter()
        .position(|c| matches!(c.codec, Codec::Gap { .. }))
    {
        let (hours_s, days_s, _) = flows_over_time(synthetic, order);
        let (hours_h, days_h, span_days) = flows_over_time(holdout, order);
        s.push_str("<h2>Traffic over time</h2>");
        let svg = bars_svg(
            &(0..24).map(|h| format!("{h:02}")).collect::<Vec<_>>(),
            &hours_h,
            &hours_s,
            "hour of the day (UTC): flows over the span",
        );
        let _ = write!(
            s,
            r#"<figure class="over-time" data-by="hour"><figcaption>flows per hour of the day</figcaption>{svg}</figure>"#
        );
        if span_days >= 7.0 {
            let svg = bars_svg(
                &WEEKDAYS.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                &days_h,
                &days_s,
                "day of the week (UTC): flows over the span",
            );
            let _ = write!(
                s,
                r#"<figure class="over-time" data-by="weekday"><figcaption>flows per day of the week</figcaption>{svg}</figure>"#
            );
        }
    }
    let header = ["metric", "column", "synthetic", "real", "what"];
    s.push_str("<h2>Domain checks (paper, Table 5)</h2>");
    table(&mut s, &header, &metric_rows(metrics, &["domain_check"]));
    s.push_str("<h2>Privacy</h2>");
    table(
        &mut s,
        &header,
        &metric_rows(metrics, &["exact_match_share", "rare_values_emitted"]),
    );
    s.push_str("<h2>Fidelity</h2>");
    table(
        &mut s,
        &header,
        &metric_rows(
            metrics,
            &[
                "rows",
                "mean_jsd",
                "jsd",
                "wasserstein",
                "total",
                "null_share",
                "gap_jsd",
                "gap_median_s",
                "gap_p90_s",
                "hourly_jsd",
                "weekday_jsd",
                "lag1_autocorrelation",
                "top_dst_port",
            ],
        ),
    );
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The axis's height in a chart from `bars_svg`.
    fn axis_y(svg: &str) -> f64 {
        let start = svg.find(r#"<line x1="40" y1=""#).expect("an axis line") + 18;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn slanted_address_labels_fit_below_the_axis() {
        let addresses: Vec<String> = (0..12).map(|i| format!("142.219.154.{i:03}")).collect();
        let shares = vec![1.0 / 12.0; 12];
        let svg = bars_svg(&addresses, &shares, &shares, "most common addresses");
        // 15 characters of 9 px type (about 5.4 px each) slanted at 35°, 12 px below the axis.
        let (down, across) = (35f64.to_radians().sin(), 35f64.to_radians().cos());
        let label_depth = 12.0 + 15.0 * 5.4 * down;
        assert!(
            axis_y(&svg) + label_depth <= HEIGHT,
            "labels run {:.1} px past the chart's bottom",
            axis_y(&svg) + label_depth - HEIGHT
        );
        // The last label starts at its bar's x (the last `transform="rotate(35 x y)"`).
        let last = svg.rfind("rotate(35 ").expect("labels") + 10;
        let x: f64 = svg[last..].split(' ').next().unwrap().parse().unwrap();
        assert!(
            x + 15.0 * 5.4 * across <= WIDTH,
            "the last label runs {:.1} px past the chart's right edge",
            x + 15.0 * 5.4 * across - WIDTH
        );
        assert!(svg.contains(r#"y="12" font-size="10" text-anchor="end">most common addresses"#));
        let short = bars_svg(&["TCP".to_string()], &[1.0], &[1.0], "most common values");
        assert!(
            axis_y(&short) > axis_y(&svg),
            "short labels keep a taller plot"
        );
    }
}
