//! Ports: 0–1023 are classes of their own (a well-known port off by one is another service);
//! above that, bins of 100, decoded to a uniform port inside the bin: 1670 classes. Ports above
//! 1023 that are frequent in training (SIP 5060, 8080, ICMP type/code 2048 in nfdump's `dp`) can
//! get classes of their own after those (option `exact_high_ports`), so they come back exactly.

use rand::Rng;

pub const EXACT: u32 = 1024;
pub const BIN: u32 = 100;
pub const CLASSES: usize = (EXACT + (65535 - EXACT) / BIN + 1) as usize;

pub fn class(port: u16) -> usize {
    let p = port as u32;
    if p < EXACT {
        p as usize
    } else {
        (EXACT + (p - EXACT) / BIN) as usize
    }
}

pub fn decode(class: usize, rng: &mut impl Rng) -> u16 {
    let c = class as u32;
    if c < EXACT {
        c as u16
    } else {
        let low = EXACT + (c - EXACT) * BIN;
        let high = (low + BIN - 1).min(65535);
        rng.random_range(low..=high) as u16
    }
}

/// A port above the exact range gets its own class when it holds this share of the rows, ...
pub const FREQUENT_SHARE: f64 = 0.001;
/// ... or at least this share of its bin's rows (so that a bin is not decoded uniformly when one
/// port is most of it: Redis's 6379, ICMP's type/code 2816 "time exceeded") ...
pub const BIN_SHARE: f64 = 0.5;
/// ... for at most this many ports, the most frequent.
pub const MAX_FREQUENT: usize = 64;

/// The frequent ports above the exact range, ascending: each seen in at least `min_count` rows
/// and in `FREQUENT_SHARE` of the rows or `BIN_SHARE` of its bin's; the most frequent
/// `MAX_FREQUENT`.
pub fn frequent(ports: impl Iterator<Item = u16>, min_count: usize) -> Vec<u16> {
    let mut counts: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    let mut bin_rows = vec![0usize; CLASSES];
    let mut rows = 0usize;
    for p in ports {
        rows += 1;
        if p as u32 >= EXACT {
            *counts.entry(p).or_default() += 1;
            bin_rows[class(p)] += 1;
        }
    }
    let mut kept: Vec<(u16, usize)> = counts
        .into_iter()
        .filter(|&(p, n)| {
            n >= min_count
                && (n as f64 >= FREQUENT_SHARE * rows as f64
                    || n as f64 >= BIN_SHARE * bin_rows[class(p)] as f64)
        })
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    kept.truncate(MAX_FREQUENT);
    let mut ports: Vec<u16> = kept.into_iter().map(|(p, _)| p).collect();
    ports.sort_unstable();
    ports
}

/// The class of a port given the column's frequent ports.
pub fn class_with(port: u16, frequent: &[u16]) -> usize {
    if port as u32 >= EXACT {
        if let Ok(i) = frequent.binary_search(&port) {
            return CLASSES + i;
        }
    }
    class(port)
}

pub fn decode_with(class: usize, frequent: &[u16], rng: &mut impl Rng) -> u16 {
    match class.checked_sub(CLASSES) {
        Some(i) if !frequent.is_empty() => frequent[i.min(frequent.len() - 1)],
        _ => decode(class.min(CLASSES - 1), rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn well_known_ports_are_exact_and_bins_cover_the_range() {
        assert_eq!(CLASSES, 1670);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for p in [0u16, 22, 53, 80, 443, 1023] {
            assert_eq!(decode(class(p), &mut rng), p);
        }
        assert_eq!(class(65535), CLASSES - 1);
        for p in [1024u16, 1123, 1124, 40000, 65535] {
            let d = decode(class(p), &mut rng);
            assert_eq!(class(d), class(p), "port {p} decoded to {d}");
        }
    }

    #[test]
    fn frequent_high_ports_come_back_exactly() {
        let ports = (0..10_000u32).map(|i| match i % 10 {
            0..=3 => 2048,
            4 => 8080,
            5 => 443,
            _ => (20_000 + i) as u16,
        });
        let f = frequent(ports, 5);
        assert_eq!(
            f,
            vec![2048, 8080],
            "ephemeral ports seen once are not frequent"
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for p in [2048u16, 8080] {
            assert!(class_with(p, &f) >= CLASSES);
            assert_eq!(decode_with(class_with(p, &f), &f, &mut rng), p);
        }
        assert_eq!(class_with(443, &f), 443);
        assert_eq!(class_with(20_001, &f), class(20_001));
    }

    #[test]
    fn a_port_that_is_most_of_its_bin_comes_back_exactly() {
        // 100,000 flows from Linux's ephemeral range (32768-60999), 60 to Redis (6379: 0.06 %
        // of the rows, but all of its bin) and 60 spread over 7000-7059 with 7001 six times (a
        // tenth of its bin).
        let ephemeral = (0..100_000u32).map(|i| (32_768 + i * 7 % 28_232) as u16);
        let redis = std::iter::repeat_n(6379u16, 60);
        let spread = (0..60u16).map(|i| if i < 6 { 7001 } else { 7000 + i });
        let ports: Vec<u16> = ephemeral.chain(redis).chain(spread).collect();
        let f = frequent(ports.iter().copied(), 5);
        assert_eq!(f, vec![6379]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert_eq!(decode_with(class_with(6379, &f), &f, &mut rng), 6379);
        let few = frequent(ports.iter().copied(), 100);
        assert!(
            few.is_empty(),
            "a port seen fewer than min_count times stays in its bin"
        );
    }
}
