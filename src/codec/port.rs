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

/// A port above the exact range gets its own class when it holds this share of the rows ...
pub const FREQUENT_SHARE: f64 = 0.001;
/// ... for at most this many ports.
pub const MAX_FREQUENT: usize = 64;

/// The frequent ports above the exact range, ascending: each seen in at least
/// `max(min_count, FREQUENT_SHARE * rows)` rows, the most frequent `MAX_FREQUENT`.
pub fn frequent(ports: impl Iterator<Item = u16>, min_count: usize) -> Vec<u16> {
    let mut counts: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    let mut rows = 0usize;
    for p in ports {
        rows += 1;
        if p as u32 >= EXACT {
            *counts.entry(p).or_default() += 1;
        }
    }
    let least = (min_count as f64).max(FREQUENT_SHARE * rows as f64);
    let mut kept: Vec<(u16, usize)> = counts
        .into_iter()
        .filter(|&(_, n)| n as f64 >= least)
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
}
