//! The cost of protecting one PESEL (SPEC §12): sealing it with XChaCha20-Poly1305, opening it
//! again, and its blind index (HMAC-SHA256), each timed over many values on the calling thread.
//! `bench/run` prints the figures into BENCHMARKS.md beside the member requests they are part of.

use std::hint::black_box;
use std::time::Instant;

use brama::crypto::datakey::DataKeys;

const ROUNDS: u32 = 200_000;

/// Nanoseconds per call of `f` over `ROUNDS` calls.
fn time(mut f: impl FnMut(u32)) -> f64 {
    for n in 0..1000 {
        f(n);
    }
    let started = Instant::now();
    for n in 0..ROUNDS {
        f(n);
    }
    started.elapsed().as_secs_f64() * 1e9 / f64::from(ROUNDS)
}

fn main() {
    let keys = DataKeys::generate();
    let id = "0192f3a4-5b6c-7d8e-9f00-112233445566";
    let pesel = "02270803624";
    let sealed = keys.encrypt(id, pesel);
    let encrypt = time(|_| {
        black_box(keys.encrypt(black_box(id), black_box(pesel)));
    });
    let decrypt = time(|_| {
        black_box(
            keys.decrypt(black_box(id), black_box(&sealed))
                .expect("opens"),
        );
    });
    let index = time(|_| {
        black_box(keys.blind_index(black_box("default"), black_box(pesel)));
    });
    println!(
        "RESULT {{\"encrypt_us\":{:.2},\"decrypt_us\":{:.2},\"blind_index_us\":{:.2}}}",
        encrypt / 1000.0,
        decrypt / 1000.0,
        index / 1000.0
    );
}
