/* Thousands of distinct stacks: a random walk through 8 functions, 7 deep.
 * Usage: many_stacks SECONDS [THREADS]   (exits with status 0) */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define DEPTH 7
typedef void (*fn_t)(int, unsigned *);
static fn_t table[8];
volatile unsigned long sink;

static void spin(void) { for (int i = 0; i < 3000; i++) sink += i; }
#define F(n) __attribute__((noinline)) void f##n(int d, unsigned *seed) { \
    if (d == 0) { spin(); return; } table[rand_r(seed) % 8](d - 1, seed); sink++; }
F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)

static double secs;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void *walk(void *arg) {
    unsigned seed = (unsigned)(unsigned long)arg;
    double end = now() + secs;
    while (now() < end) table[rand_r(&seed) % 8](DEPTH - 1, &seed);
    return 0;
}
int main(int argc, char **argv) {
    fn_t fs[8] = {f0, f1, f2, f3, f4, f5, f6, f7};
    for (int i = 0; i < 8; i++) table[i] = fs[i];
    secs = argc > 1 ? atof(argv[1]) : 8;
    int n = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[64];
    for (int i = 1; i < n && i < 64; i++) pthread_create(&t[i], 0, walk, (void *)(unsigned long)(i + 1));
    walk((void *)1UL);
    for (int i = 1; i < n && i < 64; i++) pthread_join(t[i], 0);
    return 0;
}
