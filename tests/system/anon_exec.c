/* Holds a page of anonymous executable memory (as a JIT does, so the
 * profiler opens its /tmp/perf-PID.map) and spins in ordinary code.
 * Usage: anon_exec SECONDS. */
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void anon_spin(void) { for (int i = 0; i < 100000; i++) sink += i; }
int main(int argc, char **argv) {
    void *code = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) return 1;
    double end = now() + (argc > 1 ? atof(argv[1]) : 2.0);
    while (now() < end) anon_spin();
    return 0;
}
