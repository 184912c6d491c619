//! A small deterministic flow simulator for the demo and the tests (no downloads): internal hosts
//! with a daily rhythm browse the web (a DNS lookup, then a burst of HTTP/HTTPS flows), sync
//! time over NTP, are polled over SNMP, pinged over ICMP, and some take SSH logins.
//! Invariants the tests rely on: TCP bytes ≥ 40·packets, UDP bytes ≥ 28·packets, clients use
//! ephemeral ports, non-TCP flows carry no TCP flags.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Flow end, epoch seconds (whole seconds, as NetFlow exports have).
    pub te: f64,
    /// Duration in seconds.
    pub td: f64,
    pub sa: [u8; 4],
    pub da: [u8; 4],
    pub sp: u16,
    pub dp: u16,
    pub pr: &'static str,
    pub flg: &'static str,
    pub pkt: i64,
    pub byt: i64,
}

/// 2016-04-11 00:00:00 UTC, the UGR'16 day the paper trained on.
pub const DEFAULT_START: f64 = 1_460_332_800.0;

const RESOLVER: [u8; 4] = [10, 0, 0, 53];
const NTP_SERVER: [u8; 4] = [10, 0, 0, 123];
const MONITOR: [u8; 4] = [10, 0, 0, 5];
const WEB_SERVERS: [[u8; 4]; 8] = [
    [93, 184, 216, 34],
    [151, 101, 1, 69],
    [172, 217, 17, 14],
    [104, 16, 132, 229],
    [13, 107, 42, 14],
    [31, 13, 71, 36],
    [185, 199, 108, 153],
    [140, 82, 121, 4],
];
const ADMINS: [[u8; 4]; 3] = [[198, 51, 100, 7], [203, 0, 113, 20], [192, 0, 2, 44]];

fn host_address(i: usize) -> [u8; 4] {
    [10, 1, (i / 250) as u8, (i % 250 + 1) as u8]
}

fn ephemeral(rng: &mut impl Rng) -> u16 {
    rng.random_range(32768..=60999)
}

/// Activity multiplier over the day: quiet at night, busiest mid-afternoon.
fn daily_rhythm(epoch: f64) -> f64 {
    let hour = epoch.rem_euclid(86_400.0) / 3600.0;
    let day = ((hour - 6.0) / 16.0 * std::f64::consts::PI).sin().max(0.0);
    0.15 + 0.85 * day
}

/// The most host-days one call simulates (hosts × span in days), so a typo cannot fill a disk
/// or run for hours.
pub const MAX_HOST_DAYS: f64 = 2_000.0;
pub const MAX_HOSTS: usize = 10_000;

/// Checks a simulation's size before any flow is made.
pub fn check_size(hosts: i64, seconds: f64) -> crate::Result<()> {
    use crate::Error;
    if !(1..=MAX_HOSTS as i64).contains(&hosts) {
        return Err(Error::option(
            "hosts",
            format!("{hosts} is not in 1..{MAX_HOSTS}"),
        ));
    }
    if !(seconds > 0.0 && seconds <= 366.0 * 86_400.0) {
        return Err(Error::option(
            "span",
            format!("{seconds} s is not in (0, 366 days]"),
        ));
    }
    let host_days = hosts as f64 * seconds / 86_400.0;
    if host_days > MAX_HOST_DAYS {
        return Err(Error::LimitExceeded(format!(
            "stan_demo_flows: {hosts} hosts over {:.1} days are {host_days:.0} host-days; at most {MAX_HOST_DAYS} are simulated in one call (call it again with another seed or start for more)",
            seconds / 86_400.0
        )));
    }
    Ok(())
}

/// Flows of `hosts` internal hosts over `seconds` from `start`, sorted by end time.
pub fn simulate(hosts: usize, seconds: f64, seed: u64, start: f64) -> Vec<Flow> {
    let mut flows: Vec<Flow> = simulate_by_host(hosts, seconds, seed, start).collect();
    flows.sort_by(|a, b| a.te.total_cmp(&b.te).then(a.sa.cmp(&b.sa)));
    flows
}

/// The flows of [`simulate`], one host after another (each host's sorted by end time), holding
/// one host's flows at a time: memory stays flat however many hosts and days are asked for.
pub fn simulate_by_host(
    hosts: usize,
    seconds: f64,
    seed: u64,
    start: f64,
) -> impl Iterator<Item = Flow> {
    (0..hosts).flat_map(move |h| {
        crate::interrupt::check();
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(h as u64));
        let mut flows = Vec::new();
        simulate_host(h, seconds, start, &mut rng, &mut flows);
        flows.sort_by(|a, b| a.te.total_cmp(&b.te).then(a.sa.cmp(&b.sa)));
        flows
    })
}

fn simulate_host(h: usize, seconds: f64, start: f64, rng: &mut ChaCha8Rng, out: &mut Vec<Flow>) {
    let me = host_address(h);
    let end = start + seconds;
    let at = |t: f64, td: f64| (t + td).floor();
    // Browsing sessions: Poisson at a per-host peak rate, thinned by the daily rhythm.
    let sessions_per_hour: f64 = LogNormal::new(2.5, 0.6).expect("valid").sample(rng);
    let gap = Exp::new(sessions_per_hour / 3600.0).expect("positive rate");
    let mut t = start + gap.sample(rng);
    let favourite = rng.random_range(0..WEB_SERVERS.len());
    while t < end {
        if rng.random::<f64>() < daily_rhythm(t) {
            let pkt = rng.random_range(1..=2);
            out.push(Flow {
                te: at(t, 0.0),
                td: 0.0,
                sa: me,
                da: RESOLVER,
                sp: ephemeral(rng),
                dp: 53,
                pr: "UDP",
                flg: "......",
                pkt,
                byt: pkt * rng.random_range(60..=120),
            });
            let server = if rng.random::<f64>() < 0.5 {
                favourite
            } else {
                rng.random_range(0..WEB_SERVERS.len())
            };
            let burst = rng.random_range(1..=5);
            let mut s = t + rng.random_range(0.0..0.5);
            for _ in 0..burst {
                out.push(web_flow(me, WEB_SERVERS[server], s, rng));
                s += rng.random_range(0.0..3.0);
            }
        }
        t += gap.sample(rng);
    }
    // NTP every ~1024 s on two hosts in three.
    if h % 3 != 2 {
        let mut t = start + rng.random_range(0.0..1024.0);
        while t < end {
            out.push(Flow {
                te: at(t, 0.0),
                td: 0.0,
                sa: me,
                da: NTP_SERVER,
                sp: 123,
                dp: 123,
                pr: "UDP",
                flg: "......",
                pkt: 1,
                byt: 76,
            });
            t += 1024.0 + rng.random_range(-5.0..5.0);
        }
    }
    // SNMP polls every 300 s.
    let mut t = start + rng.random_range(0.0..300.0);
    while t < end {
        out.push(Flow {
            te: at(t, 0.0),
            td: 0.0,
            sa: MONITOR,
            da: me,
            sp: ephemeral(rng),
            dp: 161,
            pr: "UDP",
            flg: "......",
            pkt: 1,
            byt: rng.random_range(80..=200),
        });
        t += 300.0;
    }
    // Occasional pings and, on every fourth host, SSH logins.
    let events: f64 = seconds / 3600.0 * if h.is_multiple_of(4) { 3.0 } else { 1.0 };
    for _ in 0..events.round() as usize {
        let t = start + rng.random_range(0.0..seconds);
        if h.is_multiple_of(4) && rng.random::<f64>() < 0.6 {
            let pkt = rng.random_range(20..=2000);
            let td = pkt as f64 * rng.random_range(0.05..0.5);
            out.push(Flow {
                te: at(t, td),
                td: (td * 1000.0).round() / 1000.0,
                sa: ADMINS[rng.random_range(0..ADMINS.len())],
                da: me,
                sp: ephemeral(rng),
                dp: 22,
                pr: "TCP",
                flg: ".AP.SF",
                pkt,
                byt: pkt * rng.random_range(60..=200),
            });
        } else {
            let pkt = rng.random_range(1..=4);
            out.push(Flow {
                te: at(t, 0.0),
                td: 0.0,
                sa: MONITOR,
                da: me,
                sp: 0,
                dp: 2048,
                pr: "ICMP",
                flg: "......",
                pkt,
                byt: 84 * pkt,
            });
        }
    }
}

fn web_flow(me: [u8; 4], server: [u8; 4], t: f64, rng: &mut ChaCha8Rng) -> Flow {
    let dp = if rng.random::<f64>() < 0.8 { 443 } else { 80 };
    if rng.random::<f64>() < 0.05 {
        // A connection attempt that got no answer.
        let pkt = rng.random_range(1..=3);
        return Flow {
            te: t.floor(),
            td: 0.0,
            sa: me,
            da: server,
            sp: ephemeral(rng),
            dp,
            pr: "TCP",
            flg: "....S.",
            pkt,
            byt: 60 * pkt,
        };
    }
    let pkt = (LogNormal::new(2.3, 1.0).expect("valid").sample(rng) as i64).clamp(3, 100_000);
    let payload: f64 = LogNormal::new(5.5, 0.7).expect("valid").sample(rng);
    let per_packet = (40.0 + payload).min(1500.0);
    let td = ((pkt as f64) * rng.random_range(0.005..0.08) * 1000.0).round() / 1000.0;
    Flow {
        te: (t + td).floor(),
        td,
        sa: me,
        da: server,
        sp: ephemeral(rng),
        dp,
        pr: "TCP",
        flg: ".AP.SF",
        pkt,
        byt: (pkt as f64 * per_packet) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_by_host_flows_are_the_sorted_flows_regrouped() {
        let sorted = simulate(4, 3.0 * 3600.0, 3, DEFAULT_START);
        let mut by_host: Vec<Flow> = simulate_by_host(4, 3.0 * 3600.0, 3, DEFAULT_START).collect();
        assert_ne!(by_host, sorted, "host by host is not already in time order");
        by_host.sort_by(|a, b| a.te.total_cmp(&b.te).then(a.sa.cmp(&b.sa)));
        assert_eq!(by_host, sorted);
    }

    #[test]
    fn deterministic_and_respects_protocol_rules() {
        let a = simulate(5, 6.0 * 3600.0, 7, DEFAULT_START);
        assert_eq!(a, simulate(5, 6.0 * 3600.0, 7, DEFAULT_START));
        assert!(a.len() > 200, "{} flows", a.len());
        for f in &a {
            match f.pr {
                "TCP" => assert!(f.byt >= 40 * f.pkt, "{f:?}"),
                "UDP" => assert!(f.byt >= 28 * f.pkt, "{f:?}"),
                _ => assert_eq!(f.flg, "......"),
            }
            if f.pr != "TCP" {
                assert!(!f.flg.contains(['A', 'S', 'F']), "{f:?}");
            }
        }
        assert!(a.windows(2).all(|w| w[0].te <= w[1].te));
        let dns = a.iter().filter(|f| f.dp == 53).count();
        let web = a.iter().filter(|f| f.dp == 443 || f.dp == 80).count();
        assert!(dns > 20 && web > dns, "dns {dns} web {web}");
    }
}
