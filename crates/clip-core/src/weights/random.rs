//! Random-init weights of any size (benchmarks and tests: the compute and the weight statistics
//! of a real model without a download).

use crate::error::Result;
use crate::weights::host::HostTensor;
use crate::weights::source::WeightSource;
use crate::weights::tree::TensorSpec;

/// A small deterministic generator: the numbers only need to be reproducible and roughly
/// unit-scaled, not cryptographic.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    pub fn uniform(&mut self, shape: &[usize], scale: f32) -> HostTensor {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect();
        HostTensor::new(shape.to_vec(), data)
    }
}

/// A randomly initialised checkpoint. Each tensor is seeded by its name, so the order of reads
/// does not matter: linear weights `U(±1/√in)` like PyTorch, norms around the identity,
/// embeddings small.
#[derive(Debug, Clone)]
pub struct RandomWeights {
    seed: u64,
}

impl RandomWeights {
    /// Weights drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl RandomWeights {
    /// The tensor `name` of `shape`, drawn as described above.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> HostTensor {
        // FNV-1a of the name, mixed with the seed.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = SplitMix::new(hash ^ self.seed);
        if name == "logit_scale" {
            HostTensor::new(vec![], vec![(1.0f32 / 0.07).ln()])
        } else if name.contains("norm") && name.ends_with(".weight") {
            let mut t = rng.uniform(shape, 0.1);
            t.data.iter_mut().for_each(|w| *w += 1.0);
            t
        } else if name.contains("embedding") {
            rng.uniform(shape, 0.02)
        } else if name.ends_with(".weight") && shape.len() == 2 {
            rng.uniform(shape, 1.0 / (shape[1] as f32).sqrt())
        } else {
            rng.uniform(shape, 0.05)
        }
    }
}

impl WeightSource for RandomWeights {
    fn float(&self, spec: &TensorSpec) -> Result<HostTensor> {
        Ok(self.tensor(&spec.name, &spec.shape))
    }
}
