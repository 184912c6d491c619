//! The fidelity benchmark's training and generation without PostgreSQL, so that they can run on
//! a GPU machine (which has no PostgreSQL): reads a CSV of UGR'16 flows (the columns of
//! `benches/ugr16_data.sh`'s table), trains on the rows before `--until` with one stream per
//! internal host, as `benches/fidelity.sh` does through `stan_train`, and writes `--span-hours`
//! of generated flows from `--until` for each seed, as CSV files with the same columns, which
//! `STAN_FIDELITY_SYNTHETIC=file bash benches/fidelity.sh` evaluates.
//!
//! cargo bench -p stan-core --bench fidelity_core -- --csv FILE --out DIR   (absolute paths:
//!     cargo runs benchmarks from core/)
//!     [--until '2016-04-11 18:00:00'] [--internal 42.219.0.0/16] [--options JSON]
//!     [--device cpu|cuda|auto] [--threads N] [--seeds 1,2,3,4] [--span-hours 6]
//!     [--model DIR: generate from the model a run saved in DIR instead of training one]
//!     [--unbounded-gaps: generate without the streams' longest training gaps]
//!
//! Each run saves its model in `--out` (model.json: codecs, network, streams; weights.bin).

use stan_core::codec::{ColumnValues, TableCodec};
use stan_core::model::train::Progress;
use stan_core::model::ModelConfig;
use stan_core::options::TrainOptions;
use stan_core::pipeline::{train_model, Generator, DEFAULT_WARMUP_SECONDS};
use stan_core::schema::{modelling_order, plan_columns, ColumnInfo, Kind, ReadAs};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The SQL types of the UGR'16 table's columns (`benches/ugr16_data.sh`).
fn column_type(name: &str) -> &'static str {
    match name {
        "te" => "timestamp without time zone",
        "td" => "double precision",
        "sa" | "da" => "inet",
        "sp" | "dp" | "fwd" | "stos" => "integer",
        "pkt" | "byt" => "bigint",
        "pr" | "flg" | "lable" => "text",
        other => panic!("column {other} is not a UGR'16 column"),
    }
}

fn epoch(text: &str) -> f64 {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("timestamp {text:?}: {e}"))
        .and_utc();
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) * 1e-6
}

fn ipv4(text: &str) -> u32 {
    let octets: Vec<u8> = text
        .split('.')
        .map(|o| {
            o.parse()
                .unwrap_or_else(|e| panic!("address {text:?}: {e}"))
        })
        .collect();
    u32::from_be_bytes(octets.try_into().expect("four octets"))
}

fn main() {
    let csv = arg("--csv").expect("--csv FILE");
    let out_dir = std::path::PathBuf::from(arg("--out").expect("--out DIR"));
    let until = epoch(&arg("--until").unwrap_or_else(|| "2016-04-11 18:00:00".into()));
    let (net, prefix) = {
        let text = arg("--internal").unwrap_or_else(|| "42.219.0.0/16".into());
        let (a, p) = text.split_once('/').expect("--internal ADDRESS/PREFIX");
        (ipv4(a), p.parse::<u32>().expect("prefix length"))
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let options_json: serde_json::Value =
        serde_json::from_str(&arg("--options").unwrap_or_else(|| "{\"seed\": 1}".into()))
            .expect("--options is JSON");
    let options = TrainOptions::parse(&options_json).expect("valid options");
    let seeds: Vec<u64> = arg("--seeds")
        .unwrap_or_else(|| "1".into())
        .split(',')
        .map(|s| s.parse().expect("--seeds 1,2,..."))
        .collect();
    let span_hours: f64 = arg("--span-hours").map_or(6.0, |v| v.parse().unwrap());
    let threads: i32 = arg("--threads").map_or(2, |v| v.parse().unwrap());
    tch::set_num_threads(threads);
    let device =
        stan_core::model::device::resolve(&arg("--device").unwrap_or_else(|| "cpu".into()))
            .expect("device");
    std::fs::create_dir_all(&out_dir).expect("--out is writable");

    let t = Instant::now();
    let mut lines = BufReader::new(std::fs::File::open(&csv).expect("--csv is readable")).lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header")
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let info: Vec<ColumnInfo> = header
        .iter()
        .map(|n| ColumnInfo {
            name: n.clone(),
            type_name: column_type(n).into(),
            is_enum: false,
        })
        .collect();
    let skip = [("lable".to_string(), "skip".to_string())];
    let plans = modelling_order(plan_columns(&info, None, &skip).expect("plans"));
    let source: Vec<usize> = plans
        .iter()
        .map(|p| header.iter().position(|h| *h == p.name).unwrap())
        .collect();
    let mut values: Vec<ColumnValues> = plans.iter().map(ColumnValues::empty_for).collect();
    let column = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .expect("te, sa and da columns")
    };
    let (te, sa, da) = (column("te"), column("sa"), column("da"));
    let mut keys = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split(',').collect();
        if epoch(fields[te]) >= until {
            continue;
        }
        // The internal endpoint, as `UGR16_HOST` in `benches/ugr16_data.sh`.
        let host = if ipv4(fields[sa]) & mask == net & mask {
            fields[sa]
        } else {
            fields[da]
        };
        let mut h = DefaultHasher::new();
        host.hash(&mut h);
        keys.push(h.finish());
        for ((plan, column), &i) in plans.iter().zip(values.iter_mut()).zip(&source) {
            let text = fields[i];
            let null = text.is_empty() || plan.kind == Kind::Skip;
            match column {
                ColumnValues::Text(v) => v.push((!null).then(|| text.to_string())),
                ColumnValues::Int(v) => v.push((!null).then(|| {
                    match plan.read_as {
                        ReadAs::Ipv4 => i64::from(ipv4(text)),
                        _ => text
                            .parse()
                            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", plan.name)),
                    }
                })),
                ColumnValues::Float(v) => v.push((!null).then(|| {
                    match plan.read_as {
                        ReadAs::Epoch => epoch(text),
                        _ => text
                            .parse()
                            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", plan.name)),
                    }
                })),
            }
        }
    }
    println!(
        "read {} training rows before {until} in {:.1} s; device {}",
        keys.len(),
        t.elapsed().as_secs_f64(),
        stan_core::model::device::name(device)
    );

    let (mut codec, config, weights, streams) = match arg("--model") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            let saved: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
            let codec: TableCodec = serde_json::from_value(saved["codec"].clone()).unwrap();
            let config: ModelConfig = serde_json::from_value(saved["config"].clone()).unwrap();
            let streams = saved["streams"].as_u64().unwrap() as usize;
            println!("generating from the model in {}", dir.display());
            (
                codec,
                config,
                std::fs::read(dir.join("weights.bin")).unwrap(),
                streams,
            )
        }
        None => train(&plans, &values, &keys, &options, device, &out_dir),
    };
    if std::env::args().any(|a| a == "--unbounded-gaps") {
        codec.stream_max_gaps.clear();
    }

    // Rows come out in codec order; the CSV keeps the input's.
    let position: Vec<Option<usize>> = header
        .iter()
        .map(|n| codec.columns.iter().position(|c| c.name == *n))
        .collect();
    for seed in seeds {
        let t = Instant::now();
        let mut generator = Generator::new(
            codec.clone(),
            config.clone(),
            &weights,
            tch::Device::Cpu,
            span_hours * 3600.0,
            streams,
            seed,
            Some(until),
            DEFAULT_WARMUP_SECONDS,
        )
        .unwrap();
        let path = out_dir.join(format!("synthetic_seed{seed}.csv"));
        let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(out, "{}", header.join(",")).unwrap();
        let mut rows = 0usize;
        while let Some(row) = generator.next_row().unwrap() {
            let fields: Vec<&str> = position
                .iter()
                .map(|p| p.and_then(|c| row[c].as_deref()).unwrap_or(""))
                .collect();
            writeln!(out, "{}", fields.join(",")).unwrap();
            rows += 1;
        }
        out.flush().unwrap();
        println!(
            "generation seed {seed}: {rows} rows in {:.1} s -> {}",
            t.elapsed().as_secs_f64(),
            path.display()
        );
    }
}

/// Trains, prints each epoch, and saves the model in `out_dir`.
fn train(
    plans: &[stan_core::schema::ColumnPlan],
    values: &[ColumnValues],
    keys: &[u64],
    options: &TrainOptions,
    device: tch::Device,
    out_dir: &std::path::Path,
) -> (TableCodec, ModelConfig, Vec<u8>, usize) {
    let t = Instant::now();
    let mut progress = |p: Progress| {
        if let Progress::Epoch(e) = p {
            println!(
                "epoch {:>3}: train {:.4} val {:.4} {:.0} windows/s, {:.0} s",
                e.epoch, e.train_loss, e.validation_loss, e.windows_per_s, e.elapsed_s
            );
        }
        Ok(())
    };
    let trained = train_model(plans, values, keys, options, device, &mut progress).unwrap();
    println!(
        "training: {:.1} s, {} epochs ({}), best validation {:.4}, {} streams",
        t.elapsed().as_secs_f64(),
        trained.summary.epochs_run,
        trained.summary.stopped_by,
        trained.summary.best_validation_loss,
        trained.streams
    );
    let saved = serde_json::json!({
        "codec": trained.codec,
        "config": trained.config,
        "streams": trained.streams,
        "options": trained.options,
        "summary": trained.summary,
    });
    std::fs::write(out_dir.join("model.json"), saved.to_string()).unwrap();
    std::fs::write(out_dir.join("weights.bin"), &trained.weights).unwrap();
    (
        trained.codec,
        trained.config,
        trained.weights,
        trained.streams,
    )
}
