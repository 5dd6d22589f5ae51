/* Spends its time reading the clock through the vDSO (clock_gettime,
 * CLOCK_MONOTONIC never enters the kernel). Usage: vdso_loop SECONDS. */
#include <stdlib.h>
#include <time.h>
volatile long sink;
__attribute__((noinline)) double clock_reader(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    sink += t.tv_nsec;
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    double end = clock_reader() + (argc > 1 ? atof(argv[1]) : 2.0);
    while (clock_reader() < end) {}
    return 0;
}
