//! Ports: 0–1023 are classes of their own (a well-known port off by one is another service);
//! above that, bins of 100, decoded to a uniform port inside the bin. 1670 classes in all.

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
}
