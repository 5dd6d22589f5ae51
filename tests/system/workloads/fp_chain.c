/* main -> outer -> middle -> leaf, each a real call (built with frame pointers,
 * -fno-optimize-sibling-calls). Usage: fp_chain SECONDS; exits with status 3. */
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) void chain_leaf(void) { for (int i = 0; i < 200000; i++) sink += i * 7; }
__attribute__((noinline)) void chain_middle(void) { chain_leaf(); sink++; }
__attribute__((noinline)) void chain_outer(void) { chain_middle(); sink++; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 2.0);
    while (now() < end) chain_outer();
    return 3;
}
