/* A fork-heavy workload: the parent forks short-lived children one after
 * another (each spins in fork_child_work for CHILD_MS ms, then exits) and
 * reaps them, for SECONDS. Usage: fork_heavy SECONDS [CHILD_MS]. Children
 * run only code they inherited: their frames are named from the parent's
 * memory maps. */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void fork_child_spin(void) { for (int i = 0; i < 20000; i++) sink += i * 3; }
__attribute__((noinline)) void fork_child_work(double ms) {
    double end = now() + ms / 1e3;
    while (now() < end) fork_child_spin();
}
__attribute__((noinline)) void fork_parent_loop(double seconds, double child_ms) {
    double end = now() + seconds;
    while (now() < end) {
        pid_t pid = fork();
        if (pid == 0) { fork_child_work(child_ms); _exit(0); }
        if (pid > 0) waitpid(pid, NULL, 0);
    }
}
int main(int argc, char **argv) {
    fork_parent_loop(argc > 1 ? atof(argv[1]) : 2.0, argc > 2 ? atof(argv[2]) : 3.0);
    return 0;
}
