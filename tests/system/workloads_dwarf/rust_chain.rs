// main -> level_one -> level_two -> level_three in a release build (no frame
// pointers: the x86_64 Linux default), each level doing work of its own
// around its call. A sleeping thread sets STOP after SECONDS.
// Usage: rust_chain SECONDS
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

#[inline(always)]
fn mix(mut x: u64, n: u32) -> u64 {
    for _ in 0..black_box(n) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x ^= x >> 29;
    }
    x
}

#[inline(never)]
fn level_three(x: u64) -> u64 {
    mix(x, 60000)
}

#[inline(never)]
fn level_two(x: u64) -> u64 {
    let x = level_three(mix(x, 15000));
    mix(x, 5000) ^ x
}

#[inline(never)]
fn level_one(x: u64) -> u64 {
    let x = level_two(mix(x, 10000));
    mix(x, 5000) ^ x
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(seconds));
        STOP.store(true, Ordering::Relaxed);
    });
    let mut x = 1u64;
    while !STOP.load(Ordering::Relaxed) {
        x = black_box(level_one(black_box(x))) + 1;
    }
    println!("{}", x & 1);
}
