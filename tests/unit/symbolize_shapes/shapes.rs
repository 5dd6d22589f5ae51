// Rust shapes for tests/unit/test_symbolize_binutils.py: a module tree, an
// inherent method, a trait method, generic instantiations and a closure.
mod shapes {
    pub struct Acc {
        pub v: u64,
    }

    impl Acc {
        #[inline(never)]
        pub fn push(&mut self, x: u64) -> u64 {
            self.v = self.v.wrapping_mul(31).wrapping_add(x);
            self.v
        }
    }

    pub trait Area {
        fn area(&self) -> u64;
    }

    impl Area for Acc {
        #[inline(never)]
        fn area(&self) -> u64 {
            self.v.rotate_left(7)
        }
    }

    #[inline(never)]
    pub fn generic<T: Into<u64>>(x: T) -> u64 {
        x.into() * 3
    }

    pub mod inner {
        #[inline(never)]
        pub fn deep(x: u64) -> u64 {
            let f = |y: u64| y ^ 0x55;
            std::hint::black_box(f)(x)
        }
    }
}

use shapes::Area;

fn main() {
    let mut a = shapes::Acc { v: 1 };
    let n = std::env::args().count() as u64;
    let r = a.push(n) + a.area() + shapes::generic(n as u32) + shapes::generic(n as u8)
        + shapes::inner::deep(n);
    std::process::exit((r & 1) as i32);
}
