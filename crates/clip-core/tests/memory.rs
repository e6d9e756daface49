//! Memory, measured with a counting allocator (this test binary's own): uploading weights
//! copies nothing on the host, and converting a checkpoint while it streams in never holds the
//! checkpoint.

// A global allocator can only be written with `unsafe`: it forwards to the system allocator
// and counts. This file is the one place the workspace allows it.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clip_core::config::ClipConfig;
use clip_core::model::Clip;
use clip_core::weights::pack::{MAX_SHARD_BYTES, Pack, Scheme};
use clip_core::weights::random::RandomWeights;
use clip_core::weights::stream::{Convert, Sink};
use clip_core::weights::tree::{ClipTensors, Role};
use common::{fixtures, model_config};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        TOTAL.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measurements must not overlap: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// `(bytes allocated in all, peak live bytes above the start)` while `f` runs.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let total = TOTAL.load(Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    (out, TOTAL.load(Ordering::Relaxed) - total, peak)
}

/// The model's weights in f32, without the token table (it stays on the host, never uploaded).
fn uploaded_bytes(config: &ClipConfig) -> usize {
    ClipTensors::new(config)
        .all()
        .iter()
        .filter(|s| s.role != Role::Table)
        .map(|s| 4 * s.shape.iter().product::<usize>())
        .sum()
}

#[test]
fn uploading_weights_copies_nothing_on_the_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = model_config();
    let device = clip_core::device::cpu();
    let (model, total, _) = measure(|| Clip::load(&RandomWeights::new(1), config.clone(), &device));
    model.unwrap();
    let table = 4 * config.text.vocab_size * config.text.tower.width;
    let weights = uploaded_bytes(&config);
    // Each tensor is made once by the source (the weights, plus the token table, which stays on
    // the host), and each linear weight is transposed once more to [in, out] — almost all of
    // the weights are matrices, so 2× the weights. A host copy per upload would make it 3×.
    let bound = table + weights * 5 / 2;
    assert!(
        total < bound,
        "loading allocated {total} bytes for {weights} bytes of weights (+{table} table), over \
         {bound}"
    );
}

/// Feeds `bytes` to a sink in 64 KiB chunks, as a download arrives.
fn stream(bytes: &[u8], sink: &mut dyn Sink) {
    sink.size(Some(bytes.len() as u64));
    for chunk in bytes.chunks(64 << 10) {
        if sink.chunk(chunk) == ControlFlow::Break(()) {
            return;
        }
    }
}

#[test]
fn converting_while_streaming_never_holds_the_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = std::fs::read(fixtures().join("tiny-clip/model.safetensors")).unwrap();
    let config = model_config();
    let (pack, _, peak) = measure(|| {
        let mut converter = Convert::new(Some(config.clone()), Scheme::Int8, "model.safetensors");
        stream(&bytes, &mut converter);
        converter.finish().unwrap()
    });
    let pack_bytes = pack.manifest.total_bytes() as usize;
    // The largest tensor in flight: its values in f32 and its encoding (int8: a byte a value
    // plus one f16 scale per 32).
    let largest = ClipTensors::new(&config)
        .all()
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .max()
        .unwrap();
    let in_flight = largest * 4 + largest + largest / 16;
    // The pack, the tensor in flight and 2 MB of bookkeeping (manifest, tensor index, a shard
    // being cut): holding the checkpoint as well (17.7 MB here) would not fit.
    let bound = pack_bytes + in_flight + (2 << 20);
    assert!(
        peak < bound,
        "converting peaked at {peak} bytes, over {bound} (pack {pack_bytes}, checkpoint {})",
        bytes.len()
    );
    // The streamed pack is the whole-file conversion, byte for byte.
    let ckpt = clip_core::weights::checkpoint::Checkpoint::parse(&bytes).unwrap();
    let whole = Pack::build(
        &ckpt,
        &config,
        Scheme::Int8,
        "model.safetensors",
        MAX_SHARD_BYTES,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(pack.manifest, whole.manifest);
    assert_eq!(pack.shards, whole.shards);
    eprintln!(
        "streaming int8 conversion of the fixture: peak {:.1} MB, pack {:.1} MB, checkpoint {:.1} MB",
        peak as f64 / 1e6,
        pack_bytes as f64 / 1e6,
        bytes.len() as f64 / 1e6
    );
}
