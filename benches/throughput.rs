//! Throughput and quick-fidelity benchmark of the core, without PostgreSQL (so it also runs on
//! a GPU machine): trains on simulated flows, generates, and prints training windows/s,
//! generation rows/s and a few fidelity figures (UGR'16 flows: `fidelity_core.rs`).
//!
//! cargo bench -p stan-core --bench throughput -- [--hosts N] [--hours H] [--options JSON]
//!     [--gen-hours H] [--threads N] [--device cpu|cuda|auto]

use stan_core::codec::ColumnValues;
use stan_core::model::train::Progress;
use stan_core::options::TrainOptions;
use stan_core::pipeline::{train_model, Generator, DEFAULT_WARMUP_SECONDS};
use stan_core::schema::{modelling_order, plan_columns, ColumnInfo};
use std::collections::HashMap;
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let hosts: usize = arg("--hosts").map_or(12, |v| v.parse().unwrap());
    let hours: f64 = arg("--hours").map_or(12.0, |v| v.parse().unwrap());
    let gen_hours: f64 = arg("--gen-hours").map_or(hours, |v| v.parse().unwrap());
    let threads: i32 = arg("--threads").map_or(1, |v| v.parse().unwrap());
    let options_json: serde_json::Value =
        serde_json::from_str(&arg("--options").unwrap_or_else(|| "{}".into()))
            .expect("--options is JSON");
    let options = TrainOptions::parse(&options_json).expect("valid options");
    tch::set_num_threads(threads);
    let device =
        stan_core::model::device::resolve(&arg("--device").unwrap_or_else(|| "cpu".into()))
            .expect("device");

    let start = stan_core::sim::DEFAULT_START + 6.0 * 3600.0;
    let flows = stan_core::sim::simulate(hosts, hours * 3600.0, 1, start);
    let info = |n: &str, t: &str| ColumnInfo {
        name: n.into(),
        type_name: t.into(),
        is_enum: false,
    };
    let cols = [
        info("te", "timestamp without time zone"),
        info("td", "double precision"),
        info("sa", "inet"),
        info("da", "inet"),
        info("sp", "integer"),
        info("dp", "integer"),
        info("pr", "text"),
        info("flg", "text"),
        info("pkt", "bigint"),
        info("byt", "bigint"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let ip = |a: [u8; 4]| Some(u32::from_be_bytes(a) as i64);
    let values = vec![
        ColumnValues::Float(flows.iter().map(|f| Some(f.te)).collect()),
        ColumnValues::Float(flows.iter().map(|f| Some(f.td)).collect()),
        ColumnValues::Int(flows.iter().map(|f| ip(f.sa)).collect()),
        ColumnValues::Int(flows.iter().map(|f| ip(f.da)).collect()),
        ColumnValues::Int(flows.iter().map(|f| Some(f.sp as i64)).collect()),
        ColumnValues::Int(flows.iter().map(|f| Some(f.dp as i64)).collect()),
        ColumnValues::Text(flows.iter().map(|f| Some(f.pr.to_string())).collect()),
        ColumnValues::Text(flows.iter().map(|f| Some(f.flg.to_string())).collect()),
        ColumnValues::Int(flows.iter().map(|f| Some(f.pkt)).collect()),
        ColumnValues::Int(flows.iter().map(|f| Some(f.byt)).collect()),
    ];
    // The values follow `cols` (the order column is already first); the model draws the
    // columns in its own order, as `stan_train` does.
    let mut by_name: HashMap<String, ColumnValues> =
        plans.iter().map(|p| p.name.clone()).zip(values).collect();
    let plans = modelling_order(plans);
    let values: Vec<ColumnValues> = plans
        .iter()
        .map(|p| by_name.remove(&p.name).expect("a value column per plan"))
        .collect();
    let keys: Vec<u64> = flows
        .iter()
        .map(|f| u32::from_be_bytes(if f.sa[..2] == [10, 1] { f.sa } else { f.da }) as u64)
        .collect();

    let t = Instant::now();
    let mut progress = |p: Progress| {
        if let Progress::Epoch(e) = p {
            eprintln!(
                "epoch {:>3}: train {:.4} val {:.4} {:.0} windows/s",
                e.epoch, e.train_loss, e.validation_loss, e.windows_per_s
            );
        }
        Ok(())
    };
    let trained = train_model(&plans, &values, &keys, &options, device, &mut progress).unwrap();
    let train_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut generator = Generator::new(
        trained.codec.clone(),
        trained.config.clone(),
        &trained.weights,
        device,
        gen_hours * 3600.0,
        trained.streams,
        1,
        None,
        DEFAULT_WARMUP_SECONDS,
    )
    .unwrap();
    let mut rows = Vec::new();
    while let Some(r) = generator.next_row().unwrap() {
        rows.push(r);
    }
    let gen_s = t.elapsed().as_secs_f64();

    let mix = |it: Vec<&str>| {
        let mut m: HashMap<String, f64> = HashMap::new();
        let n = it.len() as f64;
        for p in it {
            *m.entry(p.to_string()).or_default() += 1.0 / n;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.iter()
            .map(|(p, f)| format!("{p} {:.3}", f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pr_col = trained
        .codec
        .columns
        .iter()
        .position(|c| c.name == "pr")
        .unwrap();
    let byt_col = trained
        .codec
        .columns
        .iter()
        .position(|c| c.name == "byt")
        .unwrap();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "rows: real {} synthetic {} (over {gen_hours} h vs {hours} h)",
        flows.len(),
        rows.len()
    );
    println!(
        "protocols: real [{}] synthetic [{}]",
        mix(flows.iter().map(|f| f.pr).collect()),
        mix(rows.iter().map(|r| r[pr_col].as_deref().unwrap()).collect())
    );
    println!(
        "bytes median: real {} synthetic {}",
        median(flows.iter().map(|f| f.byt as f64).collect()),
        median(
            rows.iter()
                .map(|r| r[byt_col].as_ref().unwrap().parse().unwrap())
                .collect()
        )
    );
    let pkt_col = trained
        .codec
        .columns
        .iter()
        .position(|c| c.name == "pkt")
        .unwrap();
    let tcp: Vec<&Vec<Option<String>>> = rows
        .iter()
        .filter(|r| r[pr_col].as_deref() == Some("TCP"))
        .collect();
    let num =
        |r: &Vec<Option<String>>, c: usize| -> f64 { r[c].as_ref().unwrap().parse().unwrap() };
    let tcp_ok = tcp
        .iter()
        .filter(|r| num(r, byt_col) >= 40.0 * num(r, pkt_col))
        .count();
    println!(
        "TCP bytes >= 40 * packets: {:.2} % of {} synthetic TCP flows (simulator: 100 %)",
        100.0 * tcp_ok as f64 / tcp.len().max(1) as f64,
        tcp.len()
    );
    println!(
        "training: {:.1} s, {} epochs ({}), best val {:.4}; generation: {:.2} s, {:.0} rows/s",
        train_s,
        trained.summary.epochs_run,
        trained.summary.stopped_by,
        trained.summary.best_validation_loss,
        gen_s,
        rows.len() as f64 / gen_s
    );
}
