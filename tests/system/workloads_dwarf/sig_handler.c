/* A SIGPROF handler that burns CPU while main runs work_loop: samples in the
 * handler must show the interrupted code below it,
 * main;work_loop;__restore_rt;on_sigprof;burn. Built -O2 -fomit-frame-pointer.
 * Usage: sig_handler SECONDS (stops on SIGALRM). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
volatile unsigned long sink;

static void on_alarm(int sig) { (void)sig; stop = 1; }

static inline unsigned long mix(unsigned long x, int n) {
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        x ^= x >> 29;
    }
    return x;
}

/* ~1 ms per signal; the timer fires every 1 ms of CPU time (every tick at
 * most), so a fifth or more of the samples land here. */
__attribute__((noinline, noclone)) unsigned long burn(unsigned long x) { return mix(x, 500000); }

__attribute__((noinline, noclone)) void on_sigprof(int sig) {
    sink += burn(sink + (unsigned long)sig);
}

/* Runs until told to stop: whatever the timer interrupts is in here. */
__attribute__((noinline, noclone)) unsigned long work_loop(unsigned long x) {
    while (!stop) x = mix(x, 1000);
    return x;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigprof;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    signal(SIGALRM, on_alarm);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_PROF, &every_ms, NULL);
    alarm(argc > 1 ? atoi(argv[1]) : 2);
    sink = work_loop(1);
    return 0;
}
