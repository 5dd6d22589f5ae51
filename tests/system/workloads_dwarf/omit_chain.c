/* main -> level_one -> level_two -> level_three, built -O2 -fomit-frame-pointer:
 * no function keeps a frame pointer, so only CFI finds the callers. Each level
 * does work of its own before and after its call (the call is never a tail
 * call), level_three the most. Usage: omit_chain SECONDS (stops on SIGALRM). */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
volatile unsigned long sink;

static void on_alarm(int sig) { (void)sig; stop = 1; }

/* A dependent multiply-xorshift chain: neither vectorised nor folded away. */
static inline unsigned long mix(unsigned long x, int n) {
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        x ^= x >> 29;
    }
    return x;
}

__attribute__((noinline, noclone)) unsigned long level_three(unsigned long x) {
    return mix(x, 60000);
}
__attribute__((noinline, noclone)) unsigned long level_two(unsigned long x) {
    x = mix(x, 15000);
    x = level_three(x);
    return mix(x, 5000) ^ x;
}
__attribute__((noinline, noclone)) unsigned long level_one(unsigned long x) {
    x = mix(x, 10000);
    x = level_two(x);
    return mix(x, 5000) ^ x;
}

int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    alarm(argc > 1 ? atoi(argv[1]) : 2);
    unsigned long x = 1;
    while (!stop) x = level_one(x) + 1;
    sink = x;
    return 0;
}
