/* main -> caller -> leaf, built -O2 -fno-omit-frame-pointer: main and caller
 * set up frame pointers, but GCC gives the small leaf none (no push %rbp,
 * nothing pushed at all), so a frame-pointer walk from inside it skips
 * `caller`. The leaf holds nearly all the samples.
 * Usage: frameless_leaf SECONDS (stops on SIGALRM). */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
volatile unsigned long sink;

static void on_alarm(int sig) { (void)sig; stop = 1; }

__attribute__((noinline, noclone)) unsigned long leaf(unsigned long x, int n) {
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        x ^= x >> 29;
    }
    return x;
}
__attribute__((noinline, noclone)) unsigned long caller(unsigned long x) {
    unsigned long a = leaf(x, 40000);
    unsigned long b = leaf(a ^ x, 40000);
    return a + b;
}

int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    alarm(argc > 1 ? atoi(argv[1]) : 2);
    unsigned long x = 1;
    while (!stop) x = caller(x) + 1;
    sink = x;
    return 0;
}
