// Several threads, each thread_main -> stage_a -> stage_b -> {crunch, thrower},
// with an exception thrown by thrower and caught in stage_b in the hot path
// (a throw every ~3 µs of work or so: the unwinder's own frames in
// libstdc++ and libgcc_s take a good share of the samples). Built g++ -O2 -fomit-frame-pointer -pthread.
// Usage: threads_exc SECONDS [THREADS] (stops on SIGALRM).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

static volatile sig_atomic_t stop;
volatile unsigned long sink;

extern "C" void on_alarm(int) { stop = 1; }

static inline unsigned long mix(unsigned long x, int n) {
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        x ^= x >> 29;
    }
    return x;
}

__attribute__((noinline, noclone)) unsigned long crunch(unsigned long x) { return mix(x, 300); }

__attribute__((noinline, noclone)) unsigned long thrower(unsigned long x) {
    x = mix(x, 50);
    if (x & 1) throw std::runtime_error("odd");
    return x;
}

__attribute__((noinline, noclone)) unsigned long stage_b(unsigned long x) {
    x = crunch(x);
    try {
        x = thrower(x);
    } catch (const std::runtime_error &e) {
        x += e.what()[0];
    }
    return mix(x, 100) + 1;
}

__attribute__((noinline, noclone)) unsigned long stage_a(unsigned long x) {
    x = mix(x, 200);
    x = stage_b(x);
    return mix(x, 100) ^ x;
}

extern "C" __attribute__((noinline)) void *thread_main(void *arg) {
    unsigned long x = reinterpret_cast<unsigned long>(arg);
    while (!stop) x = stage_a(x) + 1;
    sink += x;
    return nullptr;
}

int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    int seconds = argc > 1 ? std::atoi(argv[1]) : 2;
    int n = argc > 2 ? std::atoi(argv[2]) : 3;
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);  // the threads never take SIGALRM
    pthread_t tids[16];
    if (n > 16) n = 16;
    for (int i = 0; i < n; i++)
        pthread_create(&tids[i], nullptr, thread_main, reinterpret_cast<void *>(i + 1UL));
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    alarm(seconds);
    for (int i = 0; i < n; i++) pthread_join(tids[i], nullptr);
    return 0;
}
