//! The fuzz targets in every `cargo test`, bounded: each seed, every committed regression
//! (`corpus/<target>/`, inputs that once broke something), and a few thousand mutations of the
//! seeds from a fixed seed — so CI runs the same inputs every time, in seconds. Longer runs:
//! `cargo xtask fuzz` (libFuzzer, coverage-guided).

use std::time::{Duration, Instant};

use clip_fuzz::seeds::{TARGETS, for_target, run};

/// Mutations per target (or as many as fit the time box).
const MUTATIONS: usize = 3000;
/// Time box per target.
const BUDGET: Duration = Duration::from_secs(6);

/// SplitMix64: a fixed seed gives the same mutations on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break size and offset arithmetic.
const INTERESTING: [u64; 8] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff_ffff,
    1 << 32,
    i64::MAX as u64,
    u64::MAX,
];
/// Text that breaks number parsing and JSON claims.
const WORDS: [&str; 8] = [
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1e308",
    "true",
    "null",
    "\"transposed\":true",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            2 if len >= 8 => {
                let i = rng.below(len - 7);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                input[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 => input.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (from, to) = (a.min(b), a.max(b).min(a.min(b) + 64));
                let copy = input[from..to].to_vec();
                let at = rng.below(len);
                input.splice(at..at, copy);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at..end);
            }
            6 => {
                // Replace a run of digits (a number in JSON or a query) by a hostile one.
                let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
                if let Some(&at) = digits.get(rng.below(digits.len())) {
                    let end = (at..len)
                        .find(|&i| !input[i].is_ascii_digit())
                        .unwrap_or(len);
                    let word = WORDS[rng.below(WORDS.len())].as_bytes().to_vec();
                    input.splice(at..end, word);
                }
            }
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
        }
    }
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("readable corpus file"))
        .collect()
}

#[test]
fn every_target_survives_its_seeds_regressions_and_mutations() {
    for (t, target) in TARGETS.into_iter().enumerate() {
        let seeds = for_target(target);
        assert!(!seeds.is_empty(), "{target}: no seeds");
        let regressions = regressions(target);
        for input in seeds.iter().chain(&regressions) {
            run(target, input);
        }
        let mut rng = Rng(0xC11F_5EED ^ t as u64);
        let started = Instant::now();
        let mut runs = 0;
        while runs < MUTATIONS && started.elapsed() < BUDGET {
            let mut input = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &mut input);
            run(target, &input);
            runs += 1;
        }
        eprintln!(
            "{target}: {} seeds, {} regressions, {runs} mutations in {:.1} s",
            seeds.len(),
            regressions.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
