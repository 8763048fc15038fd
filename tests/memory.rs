//! Resident memory stays flat while nobody scrapes `/metrics` (issue 12): a test binary of its
//! own, so that no other test's allocations move the figures it reads.
//!
//! Every request records its latency into `http_request_duration_seconds`; the recorder keeps
//! each sample (~8 bytes) until its upkeep folds them into buckets. Serving a million requests
//! in a debug build would take minutes, so the samples are recorded here as the request layer
//! records them, half a million a round.

use std::sync::Mutex;
use std::time::Duration;

/// The tests read this process's resident memory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// This process's resident memory, in KiB (`VmRSS` of /proc/self/status).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn a_round_of_requests() {
    for _ in 0..500_000 {
        metrics::histogram!(
            "http_request_duration_seconds",
            "method" => "GET",
            "route" => "/api/auth/me"
        )
        .record(0.0012);
    }
    // Longer than the recorder's upkeep interval.
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn latency_samples_do_not_pile_up_without_a_scrape() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        brama::telemetry::prometheus().is_some(),
        "the recorder installs"
    );
    // The first round may grow the heap to its working size; after it, it must stay.
    a_round_of_requests();
    let after_first = resident_kib();
    a_round_of_requests();
    a_round_of_requests();
    a_round_of_requests();
    let after_last = resident_kib();
    // Without upkeep three rounds keep ~12 MiB of samples.
    assert!(
        after_last <= after_first + 4 * 1024,
        "resident memory grew from {after_first} KiB to {after_last} KiB over three rounds"
    );
    // And what was recorded is still counted.
    let text = brama::telemetry::prometheus().expect("recorder").render();
    assert!(
        text.contains(
            "http_request_duration_seconds_count{method=\"GET\",route=\"/api/auth/me\"} 2000000"
        ),
        "{}",
        text.lines()
            .filter(|l| l.contains("_count"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Memory freed by a thread that allocated many small blocks (a reader's page cache, the ids of
/// an export) goes back to the system within a few trim periods: glibc alone returns only the
/// top of a heap, and one block left high up keeps everything below it resident.
#[test]
fn freed_heap_memory_is_given_back_by_the_trim_task() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let start = resident_kib();
    // 200 MiB in 1 KiB blocks on a thread of its own (so in a heap of its own); every 64th is
    // kept, the rest freed.
    let kept = std::thread::spawn(|| {
        let blocks: Vec<Vec<u8>> = (0..200 * 1024).map(|n| vec![n as u8; 1024]).collect();
        blocks.into_iter().step_by(64).collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    let freed = resident_kib();
    assert!(
        freed > start + 150 * 1024,
        "the freed blocks stay resident until trimmed: {start} KiB, then {freed} KiB"
    );
    runtime.block_on(async {
        brama::app::start_heap_trim(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(1000)).await;
    });
    let trimmed = resident_kib();
    assert!(
        trimmed + 100 * 1024 < freed,
        "resident memory {freed} KiB before the trim task, {trimmed} KiB after"
    );
    assert_eq!(kept.len(), 3200);
}
