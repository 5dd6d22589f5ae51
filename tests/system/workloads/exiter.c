/* A short-lived process: burns CPU in exiter_work for SECONDS, then exits. */
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) void exiter_work(void) { for (int i = 0; i < 100000; i++) sink += i ^ 5; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 0.3);
    while (now() < end) exiter_work();
    return 0;
}
