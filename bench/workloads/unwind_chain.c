/* bench/unwind.py's C workload: built -O2 -fomit-frame-pointer, so a
 * frame-pointer walk loses the callers; three levels of calls from main to
 * a leaf that sorts with libc's qsort (frameless libc code and a callback
 * from it) and does some arithmetic of its own.
 * Usage: unwind_chain [SECONDS]  (default 600) */
#include <stdlib.h>
#include <time.h>

#define N 4096

static volatile unsigned sink;

static int cmp(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) static unsigned leaf_sort(unsigned *v, unsigned seed)
{
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = seed >> 8;
    }
    qsort(v, N, sizeof v[0], cmp);
    return v[N / 2] ^ seed;
}

__attribute__((noinline)) static unsigned leaf_mix(unsigned seed)
{
    for (int i = 0; i < 20000; i++)
        seed = (seed ^ (seed >> 7)) * 2654435761u + (unsigned)i;
    return seed;
}

__attribute__((noinline)) static unsigned level3(unsigned *v, unsigned seed)
{
    seed = leaf_sort(v, seed);
    return leaf_mix(seed) + 1;
}

__attribute__((noinline)) static unsigned level2(unsigned *v, unsigned seed)
{
    return level3(v, seed * 3u) + 2;
}

__attribute__((noinline)) static unsigned level1(unsigned *v, unsigned seed)
{
    return level2(v, seed + 7u) + 3;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 600;
    unsigned *v = malloc(N * sizeof *v);
    struct timespec t0, t;
    unsigned seed = 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int k = 0; k < 16; k++)
            seed = level1(v, seed);
        sink = seed;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
            break;
    }
    free(v);
    return 0;
}
