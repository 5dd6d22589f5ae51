// Two threads running two instantiations of a template; the second thread
// starts after DELAY seconds, or on SIGUSR1 when DELAY is negative (to check
// threads started mid-run). Usage: threads SECONDS DELAY
#include <signal.h>
#include <chrono>
#include <cstdlib>
#include <thread>
namespace work {
volatile unsigned long sink;
template <typename T> struct Spinner {
    __attribute__((noinline)) static void spin(double seconds) {
        auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        T acc = 0;
        while (std::chrono::steady_clock::now() < end)
            for (int i = 0; i < 10000; i++) acc += static_cast<T>(i) * static_cast<T>(1.5);
        sink += static_cast<unsigned long>(acc);
    }
};
}  // namespace work
int main(int argc, char **argv) {
    double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    double delay = argc > 2 ? std::atof(argv[2]) : 0.3;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);  // inherited by the threads
    auto start = std::chrono::steady_clock::now();
    std::thread first(work::Spinner<int>::spin, seconds);
    if (delay >= 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    } else {
        int sig;
        sigwait(&usr1, &sig);
        delay = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::thread second(work::Spinner<double>::spin, seconds - delay);
    first.join();
    second.join();
    return 0;
}
