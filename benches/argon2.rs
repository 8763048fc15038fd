//! One argon2id hash with brama's configured parameters, timed on the calling thread, so that
//! `bench/run` can compare login throughput with the raw hash rate measured in the same run.

use std::time::Instant;

use brama::Config;
use brama::crypto::hasher::{HashParams, hash_blocking};

fn main() {
    let config = Config::default();
    let params = HashParams {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: config.argon2_parallelism,
    };
    // Warm up the allocator and caches, then time a fixed number of hashes.
    for _ in 0..3 {
        hash_blocking(params, "Zx8!quokka").expect("hash");
    }
    let rounds = 40;
    let started = Instant::now();
    for _ in 0..rounds {
        hash_blocking(params, "Zx8!quokka").expect("hash");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "RESULT {{\"hashes_per_second\":{:.2},\"ms_per_hash\":{:.3},\"memory_kib\":{},\"iterations\":{},\"parallelism\":{}}}",
        f64::from(rounds) / seconds,
        seconds * 1000.0 / f64::from(rounds),
        params.memory_kib,
        params.iterations,
        params.parallelism
    );
}
