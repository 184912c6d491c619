use super::*;
use crate::schema::{plan_columns, ColumnInfo};
use rand::SeedableRng;

/// The slot value a count column's codec gives `value`.
fn count_slot(codec: &TableCodec, column: usize, value: f64) -> f32 {
    let Codec::Count { min, scale, .. } = &codec.columns[column].codec else {
        panic!("column {column} is not a count")
    };
    scale.to_z((value - *min as f64).ln_1p())
}

fn info(name: &str, t: &str) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        type_name: t.into(),
        is_enum: false,
    }
}

/// A small table with every codec, including NULLs and a rare category value.
fn table() -> (Vec<ColumnPlan>, Vec<ColumnValues>) {
    let cols = [
        info("te", "timestamp without time zone"),
        info("sa", "inet"),
        info("dp", "integer"),
        info("pr", "text"),
        info("pkt", "bigint"),
        info("td", "double precision"),
        info("note", "text"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 400;
    let te = (0..n).map(|i| Some(1_460_332_800.0 + i as f64)).collect();
    let sa = (0..n)
        .map(|i| Some(u32::from(std::net::Ipv4Addr::new(10, 1, 0, (i % 7) as u8 + 1)) as i64))
        .collect();
    let dp = (0..n)
        .map(|i| Some([53i64, 443, 80, 40_123][i % 4]))
        .collect();
    let pr = (0..n)
        .map(|i| {
            Some(if i == 0 {
                "RARE".to_string()
            } else if i % 3 == 0 {
                "UDP".into()
            } else {
                "TCP".into()
            })
        })
        .collect();
    let pkt = (0..n).map(|i| Some(1 + (i as i64 * 37) % 900)).collect();
    let td = (0..n).map(|i| Some(i as f64 / 10.0)).collect();
    let note = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                None
            } else {
                Some("x".to_string())
            }
        })
        .collect();
    let values = vec![
        ColumnValues::Float(te),
        ColumnValues::Int(sa),
        ColumnValues::Int(dp),
        ColumnValues::Text(pr),
        ColumnValues::Int(pkt),
        ColumnValues::Float(td),
        ColumnValues::Text(note),
    ];
    // plan_columns puts the order column first; `te` already is.
    (plans, values)
}

#[test]
fn fitted_codecs_are_as_designed() {
    let (plans, values) = table();
    let (codec, enc) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    let kinds: Vec<&Codec> = codec.columns.iter().map(|c| &c.codec).collect();
    assert!(matches!(kinds[0], Codec::Gap { resolution, .. } if *resolution == 1.0));
    assert_eq!(codec.clock(), time::Clock::DAILY);
    // Only octets and ports seen in training can be generated.
    let Codec::Ipv4 { unseen, own: false } = kinds[1] else {
        panic!("{:?}", kinds[1])
    };
    assert_eq!((unseen[0].len(), unseen[3].len()), (255, 249));
    let Codec::Port { unseen, .. } = kinds[2] else {
        panic!("{:?}", kinds[2])
    };
    assert_eq!(unseen.len(), port::CLASSES - 4);
    // The value seen once is never emitted: it only feeds the "other" class.
    assert_eq!(
        kinds[3],
        &Codec::Category {
            values: vec!["TCP".into(), "UDP".into()],
            other: true
        }
    );
    assert!(matches!(kinds[4], Codec::Count { min: 1, .. }));
    assert!(matches!(kinds[5], Codec::Continuous { .. }));
    assert!(codec.columns[6].nullable && !codec.columns[5].nullable);
    assert_eq!(enc.rows, 400);
    assert_eq!(enc.slots.len(), 400 * codec.slot_width());
    // note's null indicator, then its value: 1 in 5 rows has no value.
    let absent = enc.present.iter().filter(|p| **p == 0.0).count();
    assert_eq!(absent, 80);
}

#[test]
fn counts_keep_the_ratio_bounds_seen_in_training() {
    let plans = plan_columns(
        &[
            info("te", "date"),
            info("pkt", "bigint"),
            info("byt", "bigint"),
        ],
        None,
        &[],
    )
    .unwrap();
    let n = 300;
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(i as f64 * 86_400.0)).collect()),
        ColumnValues::Int((0..n).map(|i| Some(1 + i as i64 % 90)).collect()),
        ColumnValues::Int(
            (0..n)
                .map(|i| Some((1 + i as i64 % 90) * (40 + i as i64 % 7)))
                .collect(),
        ),
    ];
    let (codec, enc) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    assert_eq!(
        codec.ratios,
        vec![RatioBound {
            numerator: 2,
            denominator: 1,
            min: 40.0,
            max: 46.0,
            given: None
        }]
    );
    // A generated row with 10 packets and far too few bytes gets 40 bytes per packet.
    let width = codec.slot_width();
    let mut row = enc.slots[..width].to_vec();
    // Slots: gap and time of day (3), then packets, then bytes.
    row[3] = count_slot(&codec, 1, 10.0);
    row[4] = count_slot(&codec, 2, 50.0);
    let out = codec.decode_row(&row, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    assert_eq!(
        (out[1].as_deref(), out[2].as_deref()),
        (Some("10"), Some("400"))
    );
}

#[test]
fn bytes_are_modelled_per_packet_when_packets_explain_them() {
    let plans = plan_columns(
        &[
            info("te", "date"),
            info("pkt", "bigint"),
            info("byt", "bigint"),
            info("other", "bigint"),
        ],
        None,
        &[],
    )
    .unwrap();
    let n = 300;
    let pkt = |i: usize| 1 + (i as i64 * 37) % 900;
    // Two packet sizes: 60 and 100 bytes.
    let byt = |i: usize| pkt(i) * if i.is_multiple_of(2) { 60 } else { 100 };
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(i as f64 * 86_400.0)).collect()),
        ColumnValues::Int((0..n).map(|i| Some(pkt(i))).collect()),
        ColumnValues::Int((0..n).map(|i| Some(byt(i))).collect()),
        // Unrelated to the packets: they explain none of it.
        ColumnValues::Int(
            (0..n)
                .map(|i| Some(1 + (i as i64 * 7_919) % 5_000))
                .collect(),
        ),
    ];
    let per = |codec: &TableCodec, c: usize| match &codec.columns[c].codec {
        Codec::Count { per, .. } => *per,
        other => panic!("column {c} is {other:?}"),
    };
    let (absolute, _) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    assert_eq!((per(&absolute, 2), per(&absolute, 3)), (None, None));
    let (codec, enc) = TableCodec::fit_with(
        &plans,
        &values,
        &[],
        5,
        FitOptions {
            relative_counts: true,
            ..FitOptions::default()
        },
    )
    .unwrap();
    assert_eq!((per(&codec, 2), per(&codec, 3)), (Some(1), None));
    let width = codec.slot_width();
    // Slots: gap and time of day (3), then packets, bytes, other.
    let bytes_slot = |r: usize| enc.slots[r * width + 4];
    // The same packet size is one value whatever the number of packets.
    assert_ne!(pkt(0), pkt(2));
    assert_eq!(bytes_slot(0), bytes_slot(2));
    assert_ne!(bytes_slot(0), bytes_slot(1));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for r in 0..n {
        let out = codec.decode_row(&enc.slots[r * width..(r + 1) * width], 0.0, &mut rng);
        assert_eq!(
            (out[1].clone(), out[2].clone()),
            (Some(pkt(r).to_string()), Some(byt(r).to_string())),
            "row {r}"
        );
    }
}

#[test]
fn encoded_rows_decode_to_the_original_values() {
    let (plans, values) = table();
    let (codec, enc) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    let width = codec.slot_width();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for r in [1usize, 2, 3, 5, 399] {
        let out = codec.decode_row(
            &enc.slots[r * width..(r + 1) * width],
            1_460_332_800.0 + r as f64,
            &mut rng,
        );
        assert_eq!(
            out[0].as_deref(),
            Some(
                time::format_epoch(1_460_332_800.0 + r as f64, "timestamp without time zone")
                    .as_str()
            )
        );
        assert_eq!(out[1], Some(format!("10.1.0.{}", r % 7 + 1)));
        let dp: u16 = out[2].as_ref().unwrap().parse().unwrap();
        let want = [53u16, 443, 80, 40_123][r % 4];
        if want < 1024 {
            assert_eq!(dp, want);
        } else {
            assert_eq!(port::class(dp), port::class(want));
        }
        assert_eq!(
            out[3].as_deref(),
            Some(if r % 3 == 0 { "UDP" } else { "TCP" })
        );
        assert_eq!(out[4], Some((1 + (r as i64 * 37) % 900).to_string()));
        let td: f64 = out[5].as_ref().unwrap().parse().unwrap();
        assert!((td - r as f64 / 10.0).abs() < 1e-3, "{td}");
        assert_eq!(
            out[6],
            if r % 5 == 0 {
                None
            } else {
                Some("x".to_string())
            }
        );
    }
}

#[test]
fn bad_values_name_their_column() {
    let (plans, mut values) = table();
    values[1] = ColumnValues::Int(vec![Some(-1); 400]);
    let e = TableCodec::fit(&plans, &values, &[], 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"sa\"") && e.contains("IPv6"), "{e}");
    let (plans, mut values) = table();
    values[5] = ColumnValues::Float(
        (0..400)
            .map(|i| Some(if i == 9 { f64::NAN } else { 1.0 }))
            .collect(),
    );
    let e = TableCodec::fit(&plans, &values, &[], 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"td\""), "{e}");
    let (plans, mut values) = table();
    values[6] = ColumnValues::Text(vec![None; 400]);
    let e = TableCodec::fit(&plans, &values, &[], 5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"note\"") && e.contains("NULL in every row"),
        "{e}"
    );
}

#[test]
fn streams_are_sorted_apart_and_gaps_restart() {
    let (plans, values) = table();
    let keys: Vec<u64> = (0..400).map(|i| (i % 2) as u64).collect();
    let (codec, enc) = TableCodec::fit(&plans, &values, &keys, 5).unwrap();
    assert_eq!(enc.stream_starts, vec![0, 200]);
    // Within a stream rows are 2 s apart; the second stream starts 1 s after the data start.
    let width = codec.slot_width();
    let gap = |p: usize| codec.gap_seconds(enc.slots[p * width]);
    assert!((gap(1) - 2.0).abs() < 1e-3 && (gap(201) - 2.0).abs() < 1e-3);
    assert!(gap(0).abs() < 1e-3 && (gap(200) - 1.0).abs() < 1e-3);
    // However far out the mixture's tail, no gap exceeds the longest one seen (2 s).
    assert_eq!(codec.gap_seconds(1e6), 2.0);
}

#[test]
fn ratio_bounds_are_also_kept_per_category_value() {
    let plans = plan_columns(
        &[
            info("te", "date"),
            info("pr", "text"),
            info("pkt", "bigint"),
            info("byt", "bigint"),
        ],
        None,
        &[],
    )
    .unwrap();
    let n = 400;
    // TCP flows carry 40..46 bytes per packet, UDP ones 28..30.
    let tcp = |i: usize| i.is_multiple_of(2);
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(i as f64 * 86_400.0)).collect()),
        ColumnValues::Text(
            (0..n)
                .map(|i| Some(if tcp(i) { "TCP" } else { "UDP" }.to_string()))
                .collect(),
        ),
        ColumnValues::Int((0..n).map(|i| Some(1 + i as i64 % 90)).collect()),
        ColumnValues::Int(
            (0..n)
                .map(|i| {
                    Some(
                        (1 + i as i64 % 90)
                            * if tcp(i) {
                                40 + i as i64 % 7
                            } else {
                                28 + i as i64 % 3
                            },
                    )
                })
                .collect(),
        ),
    ];
    let (codec, enc) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    assert!(codec.ratios.contains(&RatioBound {
        numerator: 3,
        denominator: 2,
        min: 40.0,
        max: 46.0,
        given: Some((1, "TCP".into()))
    }));
    // A generated TCP row with 10 packets and 300 bytes is lifted to 400; as UDP it would stay.
    let width = codec.slot_width();
    let mut row = enc.slots[..width].to_vec();
    let Codec::Category {
        values: protocols, ..
    } = &codec.columns[1].codec
    else {
        panic!()
    };
    let tcp_class = protocols.iter().position(|v| v == "TCP").unwrap();
    row[3] = tcp_class as f32;
    row[4] = count_slot(&codec, 2, 10.0);
    row[5] = count_slot(&codec, 3, 300.0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let out = codec.decode_row(&row, 0.0, &mut rng);
    assert_eq!(
        (out[1].as_deref(), out[3].as_deref()),
        (Some("TCP"), Some("400"))
    );
    row[3] = (1 - tcp_class) as f32;
    let out = codec.decode_row(&row, 0.0, &mut rng);
    assert_eq!(
        (out[1].as_deref(), out[3].as_deref()),
        (Some("UDP"), Some("300"))
    );
}

#[test]
fn protocols_keep_to_the_ports_they_were_seen_with() {
    let cols = [
        info("te", "timestamp without time zone"),
        info("dp", "integer"),
        info("pr", "text"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 600;
    let dp: Vec<i64> = (0..n).map(|i| [53, 443, 123, 22][i % 4]).collect();
    // 443 and 22 carry TCP, 53 UDP, 123 both; one UDP flow on 443 is too rare to count.
    let pr: Vec<Option<String>> = (0..n)
        .map(|i| {
            let udp = dp[i] == 53 || (dp[i] == 123 && i % 8 < 4) || i == 1;
            Some(if udp { "UDP" } else { "TCP" }.to_string())
        })
        .collect();
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(1_460_332_800.0 + i as f64)).collect()),
        ColumnValues::Int(dp.iter().map(|&p| Some(p)).collect()),
        ColumnValues::Text(pr),
    ];
    let (codec, _) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    let Codec::Category {
        values: protocols, ..
    } = &codec.columns[2].codec
    else {
        panic!("{:?}", codec.columns[2])
    };
    let bit = |p: &str| 1u64 << protocols.iter().position(|v| v == p).unwrap();
    let mask = &codec.pairs[0];
    let class = |p: u16| port::class(p) as u32;
    // Default: no frequent-port classes, so the layout (and training) is as before.
    assert!(matches!(&codec.columns[1].codec, Codec::Port { frequent, .. } if frequent.is_empty()));
    assert_eq!(mask.allowed_for(class(443)), Some(bit("TCP")), "{mask:?}");
    assert_eq!(mask.allowed_for(class(22)), Some(bit("TCP")));
    assert_eq!(mask.allowed_for(class(53)), Some(bit("UDP")));
    assert_eq!(
        mask.allowed_for(class(123)),
        None,
        "both protocols: no constraint"
    );
}

/// Ports are drawn after the protocol: each protocol seen often enough keeps to the port
/// classes it had in training, even those it had once, and a protocol seen on every port has
/// no constraint.
#[test]
fn ports_keep_to_the_protocols_they_were_seen_with() {
    let cols = [
        info("te", "timestamp without time zone"),
        info("pr", "text"),
        info("dp", "integer"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 900;
    let row = |i: usize| match i % 3 {
        0 => ("ICMP", if i == 3 { 771 } else { 2048 }),
        1 => ("TCP", [80, 443, 22][i % 9 / 3]),
        _ => ("UDP", [53, 80, 443, 22, 2048, 771][i / 3 % 6]),
    };
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(1_460_332_800.0 + i as f64)).collect()),
        ColumnValues::Text((0..n).map(|i| Some(row(i).0.to_string())).collect()),
        ColumnValues::Int((0..n).map(|i| Some(row(i).1)).collect()),
    ];
    let (codec, _) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    let Codec::Category {
        values: protocols, ..
    } = &codec.columns[1].codec
    else {
        panic!("{:?}", codec.columns[1])
    };
    let protocol = |p: &str| protocols.iter().position(|v| v == p).unwrap() as u32;
    let class = |p: u16| port::class(p);
    let mask = codec
        .pairs
        .iter()
        .find(|m| !m.allowed_wide.is_empty())
        .expect("a port mask");
    let kept = |pr: &str| -> Vec<usize> {
        let words = mask.allowed_words_for(protocol(pr)).unwrap();
        (0..port::CLASSES)
            .filter(|&c| words[c / 64] >> (c % 64) & 1 == 1)
            .collect()
    };
    let mut icmp = vec![class(771), class(2048)];
    icmp.sort_unstable();
    assert_eq!(kept("ICMP"), icmp, "{mask:?}");
    assert_eq!(kept("TCP"), [class(22), class(80), class(443)]);
    assert_eq!(
        mask.allowed_words_for(protocol("UDP")),
        None,
        "UDP had every port"
    );

    // A generated ICMP row may take only ICMP's classes; UDP any class the head allows.
    let allowed = vec![1f32; port::CLASSES];
    let mut out = Vec::new();
    let slot_of_pr = mask.given_slot;
    let given = |pr: u32| move |s: usize| if s == slot_of_pr { pr } else { 0 };
    assert!(restrict_classes(
        std::slice::from_ref(mask),
        given(protocol("ICMP")),
        &allowed,
        &mut out
    ));
    let drawable: Vec<usize> = (0..out.len()).filter(|&c| out[c] > 0.0).collect();
    assert_eq!(drawable, icmp);
    assert!(!restrict_classes(
        std::slice::from_ref(mask),
        given(protocol("UDP")),
        &allowed,
        &mut out
    ));
}

#[test]
fn frequent_high_ports_get_classes_when_asked() {
    let (plans, values) = table();
    let (codec, _) = TableCodec::fit_with(
        &plans,
        &values,
        &[],
        5,
        FitOptions {
            exact_high_ports: true,
            ..FitOptions::default()
        },
    )
    .unwrap();
    let Codec::Port { unseen, frequent } = &codec.columns[2].codec else {
        panic!("{:?}", codec.columns[2])
    };
    // 40123 is a quarter of the rows: a class of its own, so its bin of 100 was never seen.
    assert_eq!(frequent, &vec![40_123]);
    assert_eq!(unseen.len(), port::CLASSES - 3);
    let heads = codec.attributes();
    let dp = heads.iter().find(|a| a.name == "dp").unwrap();
    assert!(
        matches!(dp.heads[0], HeadSpec::Softmax { classes, .. } if classes == port::CLASSES + 1)
    );
}

/// Flows of 3 hosts (one stream each), the host as source or destination, the other end one
/// of many peers; in `stray` of every 10 rows neither end is the host.
fn host_streams(stray: usize) -> (Vec<ColumnPlan>, Vec<ColumnValues>, Vec<u64>) {
    let cols = [
        info("te", "timestamp without time zone"),
        info("sa", "inet"),
        info("da", "inet"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 300;
    let addr = |a, b, c, d| Some(u32::from(std::net::Ipv4Addr::new(a, b, c, d)) as i64);
    let host = |i: usize| addr(42, 219, 150 + (i % 3) as u8, 7);
    let peer = |i: usize| addr(8, 8, (i % 50) as u8, (i % 13) as u8);
    let te = (0..n).map(|i| Some(1_460_332_800.0 + i as f64)).collect();
    let (mut sa, mut da) = (vec![], vec![]);
    for i in 0..n {
        let (s, d) = if i / 3 % 10 < stray {
            (peer(i), peer(i + 1))
        } else if i % 2 == 0 {
            (host(i), peer(i))
        } else {
            (peer(i), host(i))
        };
        sa.push(s);
        da.push(d);
    }
    let keys = (0..n).map(|i| (i % 3) as u64).collect();
    let values = vec![
        ColumnValues::Float(te),
        ColumnValues::Int(sa),
        ColumnValues::Int(da),
    ];
    (plans, values, keys)
}

/// `fit_with` with only `stream_addresses` on.
fn fit_keeping_addresses(
    plans: &[ColumnPlan],
    values: &[ColumnValues],
    keys: &[u64],
) -> (TableCodec, EncodedTable) {
    let options = FitOptions {
        stream_addresses: true,
        ..FitOptions::default()
    };
    TableCodec::fit_with(plans, values, keys, 5, options).unwrap()
}

#[test]
fn a_stream_per_host_flags_the_hosts_address() {
    let (plans, values, keys) = host_streams(0);
    let (codec, enc) = fit_keeping_addresses(&plans, &values, &keys);
    for c in 1..3 {
        assert!(
            matches!(codec.columns[c].codec, Codec::Ipv4 { own: true, .. }),
            "{:?}",
            codec.columns[c]
        );
    }
    let attrs = codec.attributes();
    assert!(attrs[1].own_value && attrs[2].own_value && !attrs[0].own_value);
    assert!(matches!(
        attrs[1].heads[0],
        HeadSpec::Softmax { classes: 2, .. }
    ));
    assert_eq!(attrs[1].heads.len(), 5);
    // Slots: gap, 2 times of day, then per address the flag and 4 octets.
    let width = codec.slot_width();
    assert_eq!(width, 3 + 5 + 5);
    let mut flagged = 0;
    for p in 0..enc.rows {
        let row = &enc.slots[p * width..(p + 1) * width];
        let (sa_own, da_own) = (row[3], row[8]);
        // Exactly one end is the host, and it is the one flagged.
        assert_eq!(sa_own + da_own, 1.0, "row {p}: {row:?}");
        let own_first = if sa_own == 1.0 { 4 } else { 9 };
        assert_eq!(&row[own_first..own_first + 2], &[42.0, 219.0]);
        flagged += 1;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let out = codec.decode_row(row, 0.0, &mut rng);
        let own_column = if sa_own == 1.0 { 1 } else { 2 };
        assert!(out[own_column].as_deref().unwrap().starts_with("42.219.15"));
    }
    assert_eq!(flagged, 300);
    // Each stream's address is kept: generated stream s keeps training stream (s mod 3)'s.
    let host = |k: u8| u32::from(std::net::Ipv4Addr::new(42, 219, 150 + k, 7));
    assert_eq!(codec.stream_addresses, vec![host(0), host(1), host(2)]);
    assert_eq!(codec.kept_value(4), vec![42.0, 219.0, 151.0, 7.0]);

    // Off when asked, and where most rows lack their stream's address (here 4 rows in 10).
    let (codec, _) =
        TableCodec::fit_with(&plans, &values, &keys, 5, FitOptions::default()).unwrap();
    assert!(matches!(
        codec.columns[1].codec,
        Codec::Ipv4 { own: false, .. }
    ));
    let (plans, values, keys) = host_streams(4);
    let (codec, _) = fit_keeping_addresses(&plans, &values, &keys);
    assert!(matches!(
        codec.columns[1].codec,
        Codec::Ipv4 { own: false, .. }
    ));
    assert_eq!(codec.slot_width(), 3 + 4 + 4);
}

/// With `two_day_clock`, 400 s of rows (less than a day) get a time of day that cycles over two
/// days from their midnight (`time::Clock::fit`), stored in the codec and used to encode them.
#[test]
fn a_short_span_gets_the_two_day_clock_when_asked() {
    let (plans, values) = table();
    let options = FitOptions {
        two_day_clock: true,
        ..FitOptions::default()
    };
    let (codec, enc) = TableCodec::fit_with(&plans, &values, &[], 5, options).unwrap();
    let clock = time::Clock {
        period: 2.0 * 86_400.0,
        origin: 1_460_332_800.0,
    };
    assert_eq!(codec.clock(), clock);
    // Row 0 is 2016-04-11 00:00:00: phase 0 either way. Row 399, 399 s later: sin of its phase.
    let width = codec.slot_width();
    let last = &enc.slots[(enc.rows - 1) * width..enc.rows * width];
    let expected = clock.features(1_460_332_800.0 + 399.0);
    assert_eq!(&last[1..3], &expected[..]);
    assert_ne!(
        expected,
        time::Clock::DAILY.features(1_460_332_800.0 + 399.0)
    );
}

/// stan 0.1.0's models (format 1) may lack fields added since: an order codec without a clock
/// reads as the daily clock it was trained with, absent lists as empty, and the current format
/// refuses the same JSON rather than guessing.
#[test]
fn a_format_1_model_without_later_fields_reads_as_it_was_trained() {
    let (plans, values) = table();
    let (codec, _) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    let config = crate::model::spec::fixtures::small_config(codec.attributes(), 3);
    let (mut codecs_json, mut config_json) = crate::store::encode(&codec, &config).unwrap();
    codecs_json["columns"][0]
        .as_object_mut()
        .unwrap()
        .remove("clock")
        .unwrap();
    codecs_json
        .as_object_mut()
        .unwrap()
        .remove("value_ranges")
        .unwrap();
    config_json
        .as_object_mut()
        .unwrap()
        .remove("stream_rate")
        .unwrap();
    assert!(crate::store::decode(
        crate::store::MODEL_FORMAT,
        codecs_json.clone(),
        config_json.clone()
    )
    .is_err());
    let (read, read_config) =
        crate::store::decode(1, codecs_json.clone(), config_json.clone()).unwrap();
    assert!(
        matches!(read.columns[0].codec, Codec::Gap { clock, .. } if clock == time::Clock::DAILY)
    );
    assert!(read.value_ranges.is_empty());
    assert!(!read_config.stream_rate);
    let unknown = crate::store::decode(crate::store::MODEL_FORMAT + 1, codecs_json, config_json);
    assert!(unknown.unwrap_err().to_string().contains("retrain"));
}

/// Each stream's longest gap (its first row's time since the table's start counts as one) is
/// kept when asked for, and bounds the gap head's z-score of every generated stream that
/// follows it.
#[test]
fn each_stream_keeps_its_longest_gap() {
    let plans = plan_columns(
        &[
            info("te", "timestamp without time zone"),
            info("n", "integer"),
        ],
        None,
        &[],
    )
    .unwrap();
    let t0 = 1_460_332_800.0;
    // Stream 0: gaps 0, 10, 10, 80; stream 1: 5, 500, 5; stream 2: one row, 1,000 s in.
    let rows = [
        (0, 0.0),
        (0, 10.0),
        (0, 20.0),
        (0, 100.0),
        (1, 5.0),
        (1, 505.0),
        (1, 510.0),
        (2, 1000.0),
    ];
    let values = vec![
        ColumnValues::Float(rows.iter().map(|r| Some(t0 + r.1)).collect()),
        ColumnValues::Int(rows.iter().map(|_| Some(1)).collect()),
    ];
    let keys: Vec<u64> = rows.iter().map(|r| r.0).collect();
    let fit = |stream_max_gap| {
        let options = FitOptions {
            stream_max_gap,
            ..FitOptions::default()
        };
        TableCodec::fit_with(&plans, &values, &keys, 1, options)
            .unwrap()
            .0
    };
    let codec = fit(true);
    assert_eq!(codec.stream_max_gaps, vec![80.0, 500.0, 1000.0]);
    for (stream, longest) in [(0, 80.0), (1, 500.0), (2, 1000.0), (4, 500.0)] {
        let z = codec.max_gap_z(stream);
        let back = codec.gap_seconds(z);
        assert!(
            (back - longest).abs() < 1e-3 * longest,
            "stream {stream}: {back}"
        );
        // (The table's longest gap, 1,000 s, caps every gap anyway.)
        if longest < 1000.0 {
            assert!(codec.gap_seconds(z + 0.01) > longest);
        }
    }
    let unbounded = fit(false);
    assert!(unbounded.stream_max_gaps.is_empty());
    assert_eq!(unbounded.max_gap_z(0), f32::INFINITY);
}

/// The plans of a table of times and durations (`double precision`).
fn time_and_duration() -> Vec<ColumnPlan> {
    let cols = [
        info("te", "timestamp without time zone"),
        info("td", "double precision"),
    ];
    plan_columns(&cols, None, &[]).unwrap()
}

/// A stored model's codec is read back from its JSON text bit for bit, so that a seed makes the
/// same rows from a stored model as from the one just trained. Without serde_json's
/// `float_roundtrip`, about one number in eleven came back a unit in the last place off.
#[test]
fn a_codec_reads_back_exactly_from_its_json_text() {
    let plans = time_and_duration();
    // 64 streams whose longest gaps (kept per stream) and durations have many digits.
    let (mut te, mut td, mut keys) = (vec![], vec![], vec![]);
    for stream in 0..64u64 {
        for k in 0..5 {
            let s = stream as f64;
            te.push(Some(
                1_460_332_800.0 + s * 0.731 + k as f64 * (1.0 + s / 7.0),
            ));
            td.push(Some((s + 1.0) / 3.0 + k as f64 / 9.0));
            keys.push(stream);
        }
    }
    let values = vec![ColumnValues::Float(te), ColumnValues::Float(td)];
    let options = FitOptions {
        stream_max_gap: true,
        ..FitOptions::default()
    };
    let (codec, _) = TableCodec::fit_with(&plans, &values, &keys, 1, options).unwrap();
    assert_eq!(codec.stream_max_gaps.len(), 64);
    let text = serde_json::to_string(&codec).unwrap();
    let read: TableCodec = serde_json::from_str(&text).unwrap();
    assert_eq!(read, codec);
}

/// Generated durations keep the precision the training values had (milliseconds here), so a
/// duration drawn next to zero comes out as exactly zero, as most real UDP flows' do; values
/// recorded at full precision are not rounded.
#[test]
fn continuous_values_keep_the_training_precision() {
    let plans = time_and_duration();
    let fit = |td: Vec<f64>| {
        let values = vec![
            ColumnValues::Float((0..td.len()).map(|i| Some(1e9 + i as f64)).collect()),
            ColumnValues::Float(td.into_iter().map(Some).collect()),
        ];
        TableCodec::fit(&plans, &values, &[], 1).unwrap().0
    };
    let milliseconds = fit((0..400)
        .map(|i| [0.0, 0.004, 1.372, 22.052][i % 4] * (i / 4) as f64)
        .collect());
    let full = fit((0..400).map(|i| i as f64 / 3.0).collect());
    let Codec::Continuous { decimals, .. } = milliseconds.columns[1].codec else {
        panic!("td is continuous")
    };
    assert_eq!(decimals, Some(3));
    assert!(matches!(
        full.columns[1].codec,
        Codec::Continuous { decimals: None, .. }
    ));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let draw = |codec: &TableCodec, z: f32, rng: &mut rand_chacha::ChaCha8Rng| -> f64 {
        // The gap's three slots, then the duration's.
        let out = codec.decode_row(&[0.0, 0.0, 1.0, z], 1e9, rng);
        out[1].as_deref().unwrap().parse().unwrap()
    };
    let zero_z = {
        let Codec::Continuous { scale, log, .. } = &milliseconds.columns[1].codec else {
            unreachable!()
        };
        assert!(*log);
        scale.to_z(number::log_steps(4e-7, 0.0, Some(3)))
    };
    assert_eq!(draw(&milliseconds, zero_z, &mut rng), 0.0);
    let mut unrounded = 0;
    for step in 0..40 {
        let z = -1.5 + step as f32 / 10.0;
        let ms = draw(&milliseconds, z, &mut rng) * 1e3;
        assert!((ms - ms.round()).abs() < 1e-6, "{ms} ms at z {z}");
        let thirds = draw(&full, z, &mut rng) * 1e3;
        unrounded += usize::from((thirds - thirds.round()).abs() > 1e-6);
    }
    assert!(
        unrounded > 30,
        "only {unrounded} of 40 full-precision values off the grid"
    );
}

/// Each count and continuous column keeps the range of z-scores of its training values
/// (generated values are drawn within it, `model::draw_within`), and the ends of that range
/// decode to the training minimum and maximum. A column with NULLs keeps its value slot's. An
/// end where many training values sit is censored (`ValueRange`).
#[test]
fn value_ranges_span_the_training_values() {
    let cols = [
        info("te", "timestamp without time zone"),
        info("td", "double precision"),
        info("pkt", "bigint"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 500;
    let td: Vec<Option<f64>> = (0..n)
        .map(|i| (i % 9 != 0).then(|| (i % 4 != 0) as u8 as f64 * (i * i % 997) as f64 / 8.0))
        .collect();
    let pkt: Vec<Option<i64>> = (0..n).map(|i| Some(2 + (i as i64 * 37) % 9000)).collect();
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(1e9 + i as f64)).collect()),
        ColumnValues::Float(td.clone()),
        ColumnValues::Int(pkt.clone()),
    ];
    let (codec, _) = TableCodec::fit(&plans, &values, &[], 1).unwrap();
    assert!(codec.columns[1].nullable && !codec.columns[2].nullable);
    // The gap's three slots, the duration's NULL flag and value, the packets' value.
    let slots: Vec<usize> = codec.value_ranges.iter().map(|r| r.slot).collect();
    assert_eq!(slots, [4, 5]);
    // A quarter of the durations are zero: that end is censored; no other end is piled up.
    let censored: Vec<(bool, bool)> = codec
        .value_ranges
        .iter()
        .map(|r| (r.low_censored, r.high_censored))
        .collect();
    assert_eq!(censored, [(true, false), (false, false)]);
    let decode_at = |end: fn(&ValueRange) -> f32| {
        let mut row = vec![0f32; codec.slot_width()];
        for range in &codec.value_ranges {
            row[range.slot] = end(range);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let out = codec.decode_row(&row, 1e9, &mut rng);
        let number = |c: usize| out[c].as_deref().unwrap().parse::<f64>().unwrap();
        (number(1), number(2))
    };
    let td_seen = td.iter().flatten();
    let td_span = (
        td_seen.clone().copied().fold(f64::INFINITY, f64::min),
        td_seen.copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let pkt_span = (
        pkt.iter().flatten().min().copied().unwrap() as f64,
        pkt.iter().flatten().max().copied().unwrap() as f64,
    );
    assert!(td_span.1 > 100.0 && pkt_span.1 > 8000.0);
    assert_eq!(decode_at(|r| r.low), (td_span.0, pkt_span.0));
    let (td_high, pkt_high) = decode_at(|r| r.high);
    assert!(
        (td_high - td_span.1).abs() < 1e-9,
        "{td_high} vs {}",
        td_span.1
    );
    assert_eq!(pkt_high, pkt_span.1);
    // A value beyond the range is clamped when decoded, so the range is where values differ.
    assert_eq!(decode_at(|r| r.high + 1.0), (td_high, pkt_high));
}

/// A count keeps the rate per unit of an earlier continuous column seen in training (packets
/// per second of duration), and a count per unit of it (bytes per packet) follows the packets
/// kept: no flow of a million packets in under a second.
#[test]
fn counts_keep_their_rate_per_unit_of_an_earlier_continuous_column() {
    let cols = [
        info("te", "timestamp without time zone"),
        info("td", "double precision"),
        info("pkt", "bigint"),
        info("byt", "bigint"),
    ];
    let plans = plan_columns(&cols, None, &[]).unwrap();
    let n = 500;
    // 10-14 packets a second over 1-49 s; 40-46 bytes a packet.
    let td: Vec<f64> = (0..n).map(|i| 1.0 + (i * 13 % 97) as f64 / 2.0).collect();
    let pkt: Vec<i64> = (0..n)
        .map(|i| (td[i] * (10.0 + (i * 7 % 41) as f64 / 10.0)).round() as i64)
        .collect();
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(1e9 + i as f64)).collect()),
        ColumnValues::Float(td.iter().map(|&t| Some(t)).collect()),
        ColumnValues::Int(pkt.iter().map(|&p| Some(p)).collect()),
        ColumnValues::Int((0..n).map(|i| Some(pkt[i] * (40 + i as i64 % 7))).collect()),
    ];
    let options = FitOptions {
        relative_counts: true,
        ..FitOptions::default()
    };
    let (codec, enc) = TableCodec::fit_with(&plans, &values, &[], 1, options).unwrap();
    assert!(matches!(codec.columns[2].codec, Codec::Count { .. }));
    let rate = codec
        .ratios
        .iter()
        .find(|r| (r.numerator, r.denominator) == (2, 1))
        .expect("a bound on packets per second");
    let rates = (0..n).map(|i| pkt[i] as f64 / td[i]);
    assert_eq!(rate.min, rates.clone().fold(f64::INFINITY, f64::min));
    assert_eq!(rate.max, rates.fold(f64::NEG_INFINITY, f64::max));
    assert!(rate.max < 15.0);
    // A training row with the most packets seen, whatever its duration.
    let width = codec.slot_width();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let most_packets = codec
        .value_ranges
        .iter()
        .find(|r| r.slot == 4)
        .unwrap()
        .high;
    let max_packets = *pkt.iter().max().unwrap() as f64;
    let mut held_back = 0;
    // One stream in time order: encoded row r is training row r.
    for (r, training_row) in enc.slots.chunks_exact(width).take(50).enumerate() {
        let mut row = training_row.to_vec();
        row[4] = most_packets;
        let out = codec.decode_row(&row, 1e9, &mut rng);
        let number = |c: usize| out[c].as_deref().unwrap().parse::<f64>().unwrap();
        let (seconds, packets, bytes) = (number(1), number(2), number(3));
        let allowed = (rate.max * seconds).floor();
        assert_eq!(packets, allowed.min(max_packets), "{seconds} s");
        held_back += usize::from(allowed < max_packets);
        // The row's own bytes per packet, times the packets kept.
        assert_eq!(bytes, packets * (40 + r % 7) as f64, "row {r}");
    }
    assert!(
        held_back > 40,
        "only {held_back} of 50 rows held back by the rate"
    );
}

/// A flow's end (a second timestamp) is modelled as the seconds after its start: decoded at any
/// generated time it follows that time by a span the training rows had, so no row ends before
/// it begins however far generated time is moved.
#[test]
fn a_flow_end_follows_its_start_wherever_time_is_moved() {
    let plans = plan_columns(
        &[
            info("t_start", "timestamp without time zone"),
            info("t_end", "timestamp without time zone"),
        ],
        None,
        &[],
    )
    .unwrap();
    let n = 400;
    let starts: Vec<f64> = (0..n).map(|i| 1_460_332_800.0 + 7.0 * i as f64).collect();
    let lengths: Vec<f64> = (0..n).map(|i| [0.0, 1.5, 30.0, 600.0][i % 4]).collect();
    let values = vec![
        ColumnValues::Float(starts.iter().map(|&t| Some(t)).collect()),
        ColumnValues::Float(
            starts
                .iter()
                .zip(&lengths)
                .map(|(t, l)| Some(t + l))
                .collect(),
        ),
    ];
    let (codec, encoded) = TableCodec::fit(&plans, &values, &[], 1).unwrap();
    let Codec::Continuous {
        since_order,
        min,
        max,
        ..
    } = codec.columns[1].codec
    else {
        panic!("the end is continuous")
    };
    assert!(since_order);
    assert_eq!((min, max), (0.0, 600.0));
    let width = codec.slot_width();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let moved = 1_700_000_000.0;
    for r in 0..n {
        let row = &encoded.slots[r * width..(r + 1) * width];
        let out = codec.decode_row(row, moved, &mut rng);
        let end = chrono::NaiveDateTime::parse_from_str(
            out[1].as_deref().unwrap(),
            "%Y-%m-%d %H:%M:%S%.f",
        )
        .unwrap()
        .and_utc()
        .timestamp_micros() as f64
            / 1e6;
        let length = end - moved;
        assert!(
            (0.0..=600.0).contains(&length),
            "row {r}: ends {length} s after it starts"
        );
    }
}

/// An id column (every value unique, like Zeek's `uid`) is not modelled: it comes back NULL
/// instead of stopping the training.
#[test]
fn an_id_column_is_left_out() {
    let plans = plan_columns(
        &[
            info("ts", "timestamp without time zone"),
            info("uid", "text"),
            info("proto", "text"),
        ],
        None,
        &[],
    )
    .unwrap();
    let n = 300;
    let values = vec![
        ColumnValues::Float((0..n).map(|i| Some(1e9 + i as f64)).collect()),
        ColumnValues::Text((0..n).map(|i| Some(format!("C{i:08x}"))).collect()),
        ColumnValues::Text(
            (0..n)
                .map(|i| Some(["tcp", "udp"][i % 2].to_string()))
                .collect(),
        ),
    ];
    let (codec, _) = TableCodec::fit(&plans, &values, &[], 5).unwrap();
    assert_eq!(codec.columns[1].codec, Codec::Skip);
    assert!(matches!(codec.columns[2].codec, Codec::Category { .. }));
}
