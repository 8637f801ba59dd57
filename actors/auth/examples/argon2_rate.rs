//! How many argon2id hashes (= sign-ins) per second this machine does with the auth service's
//! default parameters (m = 19456 KiB, t = 2, p = 1): one thread, then one per CPU.
//!
//! `cargo run --release -p emporium-auth --example argon2_rate [seconds per run]`

use std::time::{Duration, Instant};

use emporium_auth::PasswordHashing;
use emporium_auth::password::{hash_blocking, params_of};

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args().nth(1).and_then(|text| text.parse().ok()).unwrap_or(5);
    let settings = PasswordHashing::default();
    let params = params_of(settings)?;
    let threads = std::thread::available_parallelism().map_or(1, |count| count.get());
    println!("argon2id m={} KiB t={} p={}", settings.memory_kib, settings.iterations, settings.parallelism);
    for num_threads in [1, threads] {
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let counts: Vec<u64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..num_threads)
                .map(|_| {
                    let params = params.clone();
                    scope.spawn(move || {
                        let mut count = 0u64;
                        while Instant::now() < until {
                            hash_blocking(&params, b"correct horse battery staple").expect("hashing works");
                            count += 1;
                        }
                        count
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().expect("worker finished")).collect()
        });
        let total: u64 = counts.iter().sum();
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{num_threads} thread(s): {total} hashes in {elapsed:.1} s = {:.1} hashes/s ({:.1} ms per hash per thread)",
            total as f64 / elapsed,
            elapsed * 1000.0 * num_threads as f64 / total.max(1) as f64
        );
    }
    Ok(())
}
