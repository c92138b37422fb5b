//! Predictive scaling's cost per ScaledObject: the memory a week of history holds, one MSTL
//! refit (every 30 minutes per ScaledObject), a restore from a persisted week (the backtest that
//! scores each model over the last day, done once at start), and 30 minutes of minute closes
//! (each minute every model forecasts; one refit among them).
//!
//! `cargo bench --bench forecast`. The memory figure is measured, not computed: a counting
//! allocator reports the bytes still allocated once a forecaster has been fed a week.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use llm_scaler::decide::forecast::{self, ForecastSpec, Forecaster, HistorySnapshot};

/// Counts the bytes currently allocated.
struct CountingAlloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A diurnal demand with some noise, tokens/s, per minute.
fn demand(minute: u64) -> f64 {
    let phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
    let noise = ((minute.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 - 0.5) * 2000.0;
    30_000.0 - 20_000.0 * phase.cos() + noise
}

fn week() -> HistorySnapshot {
    let values = (0..forecast::CAPACITY as u64).map(|m| Some(demand(m) as f32)).collect();
    HistorySnapshot { version: HistorySnapshot::VERSION, bucket_s: forecast::BUCKET_S, start: 0, values }
}

fn bench(c: &mut Criterion) {
    let snap = week();
    // Memory: live bytes of a forecaster restored from a week and fed another day minute by minute.
    let before = LIVE.load(Ordering::Relaxed);
    let mut f = Forecaster::new(ForecastSpec::default());
    f.restore(&snap).expect("a valid week");
    let end = snap.start + snap.values.len() as u64;
    for m in end..end + 1440 {
        f.observe(Duration::from_secs(m * 60), demand(m));
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "forecaster after a week + a day: {held} bytes live on the heap ({} accounted by memory_bytes); {} B of JSON when persisted",
        f.memory_bytes(),
        serde_json::to_string(&f.snapshot()).map_or(0, |s| s.len())
    );
    let mut g = c.benchmark_group("forecast");
    g.sample_size(10);
    g.bench_function("mstl_refit_a_week", |b| b.iter(|| black_box(forecast::mstl_refit(&snap, 15))));
    g.bench_function("restore_a_week_with_backtest", |b| {
        b.iter(|| {
            let mut f = Forecaster::new(ForecastSpec::default());
            f.restore(black_box(&snap)).expect("a valid week");
            black_box(f.outlook().is_ok())
        })
    });
    let mut next = end + 1440;
    g.bench_function("thirty_minute_closes_one_refit", |b| {
        b.iter(|| {
            for m in next..next + 30 {
                f.observe(Duration::from_secs(m * 60), demand(m));
            }
            next += 30;
            black_box(f.outlook().is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
