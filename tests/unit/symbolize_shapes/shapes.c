/* C shapes for tests/unit/test_symbolize_binutils.py: many global and static
 * functions of different sizes, a global and a weak alias of a static
 * function, a hidden-visibility function. Built as a PIE and a non-PIE
 * executable (with -DWITH_MAIN) and as a shared library. */
#define NOINLINE __attribute__((noinline, noclone, used))

#define PAIR(n)                                                             \
    static NOINLINE int local_##n(int x) {                                  \
        volatile int k = n;                                                 \
        for (int i = 0; i < (n % 5); i++) x = x * k + (x >> (i + 1));       \
        return x;                                                           \
    }                                                                       \
    NOINLINE int exported_##n(int x) { return local_##n(x + n) ^ n; }

PAIR(1) PAIR(2) PAIR(3) PAIR(4) PAIR(5) PAIR(6) PAIR(7) PAIR(8)
PAIR(9) PAIR(10) PAIR(11) PAIR(12) PAIR(13) PAIR(14) PAIR(15) PAIR(16)

/* Aliases: one address, a local name and a global (or weak) one. */
static NOINLINE int hidden_impl(int x) { return x * 7 - 2; }
extern int public_name(int) __attribute__((alias("hidden_impl")));

static NOINLINE int weak_impl(int x) { return x * 11 + 5; }
extern int weak_name(int) __attribute__((weak, alias("weak_impl")));

__attribute__((visibility("hidden"))) NOINLINE int internal_global(int x) {
    switch (x & 7) {
    case 0: return x + 1;
    case 1: return x * 3;
    case 2: return x - 9;
    case 3: return x ^ 0x55;
    case 4: return x << 2;
    case 5: return x >> 1;
    case 6: return ~x;
    default: return 0;
    }
}

typedef int (*fn)(int);
static fn const table[] = {
    exported_1, exported_2, exported_3, exported_4, exported_5, exported_6,
    exported_7, exported_8, exported_9, exported_10, exported_11, exported_12,
    exported_13, exported_14, exported_15, exported_16,
    public_name, weak_name, internal_global,
};

NOINLINE int run_all(int x) {
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) x += table[i](x);
    return x;
}

#ifdef WITH_MAIN
int main(int argc, char **argv) {
    (void)argv;
    return run_all(argc) & 1;
}
#endif
