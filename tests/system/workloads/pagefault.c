/* Touches fresh anonymous pages in touch_pages(): one page fault per page.
 * Usage: pagefault PAGES [WAIT_MS]: sleeps WAIT_MS first (default 0). */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
__attribute__((noinline)) void touch_pages(char *p, long pages, long size) {
    for (long i = 0; i < pages; i++) p[i * size] = 1;
}
int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 2000, size = sysconf(_SC_PAGESIZE);
    char *p = mmap(0, pages * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    if (argc > 2) usleep(atol(argv[2]) * 1000);
    touch_pages(p, pages, size);
    return 0;
}
