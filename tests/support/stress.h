// What the time-bounded concurrency stress tests share: how long they run
// (SIPLB_STRESS_SECONDS, for minutes on demand), pinning readers and writers
// to separate CPUs, and a mixer that derives checkable payloads from keys.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <cstdint>
#include <cstdlib>
#include <thread>

namespace siplb::test {

// SIPLB_STRESS_SECONDS if set to a positive number, else `default_s`.
inline double stress_seconds(double default_s) {
    const char* s = std::getenv("SIPLB_STRESS_SECONDS");
    const double v = s ? std::atof(s) : 0;
    return v > 0 ? v : default_s;
}

// Best effort: a restricted cpuset may refuse, and one CPU pins nothing.
inline void pin_to_cpu(unsigned index) {
    const unsigned n = std::thread::hardware_concurrency();
    if (n < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(index % n, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// splitmix64's finalizer.
inline uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

}  // namespace siplb::test
