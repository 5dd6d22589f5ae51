/* The `make demo` workload: a small "server" that parses, hashes and sorts.
 * Built on the fly with gcc -O2 -fno-omit-frame-pointer. Usage: demo SECONDS */
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile unsigned long sink;

__attribute__((noinline)) static unsigned long hash_bytes(const char *s, size_t n) {
    unsigned long h = 1469598103934665603UL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211UL;
    return h;
}
__attribute__((noinline)) static int parse_request(char *buf, size_t n) {
    int fields = 0;
    for (size_t i = 0; i < n; i++) if (buf[i] == ',') fields++;
    return fields + (int)hash_bytes(buf, n) % 3;
}
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
__attribute__((noinline)) static void sort_results(int *v, int n) { qsort(v, n, sizeof *v, cmp); }
__attribute__((noinline)) static void handle_request(char *buf, size_t n, int *v, int m) {
    sink += parse_request(buf, n);
    for (int i = 0; i < m; i++) v[i] = rand();
    sort_results(v, m);
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 3.0);
    char buf[4096];
    int v[2000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (i % 7) ? 'a' + i % 26 : ',';
    while (now() < end) handle_request(buf, sizeof buf, v, 2000);
    return 0;
}
