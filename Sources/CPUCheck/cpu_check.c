#include "CPUCheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef APSWEEP_CPU_LEVEL
#define APSWEEP_CPU_LEVEL ""
#endif

const char *apsweep_cpu_level(void) { return APSWEEP_CPU_LEVEL; }

#if defined(__x86_64__)
/// Whether the CPU has `feature`; APSWEEP_TEST_CPU_LACKS=<feature> pretends it does not (the test
/// of this message runs on a CPU that has everything).
__attribute__((target("arch=x86-64")))
static int has(const char *feature, int supported) {
    const char *pretend = getenv("APSWEEP_TEST_CPU_LACKS");
    if (pretend && strcmp(pretend, feature) == 0) return 0;
    return supported;
}

// Compiled for the baseline whatever -march says: it must run on the CPUs it turns away. The
// feature macros below are those of this file's -march, the same as the Swift code's.
__attribute__((constructor, target("arch=x86-64")))
static void apsweep_check_cpu(void) {
    __builtin_cpu_init();
    const char *missing = NULL;
    // __builtin_cpu_supports takes a string literal only, hence a macro rather than a table.
#define REQUIRE(feature) if (!has(feature, __builtin_cpu_supports(feature))) missing = feature
#ifdef __AVX512F__
    REQUIRE("avx512f");
#endif
#ifdef __BMI2__
    REQUIRE("bmi2");
#endif
#ifdef __FMA__
    REQUIRE("fma");
#endif
#ifdef __AVX2__
    REQUIRE("avx2");
#endif
#ifdef __AVX__
    REQUIRE("avx");
#endif
#ifdef __SSE4_2__
    REQUIRE("sse4.2");
#endif
#undef REQUIRE
    if (missing) {
        fprintf(stderr,
                "Error: this apsweep was compiled for %s CPUs and this CPU has no %s instructions.\n"
                "Rebuild it for any x86-64 CPU: APSWEEP_CPU=x86-64 swift build -c release\n"
                "(about 10 %% slower training; use the same build on every node of a mixed cluster).\n",
                APSWEEP_CPU_LEVEL, missing);
        _exit(70);
    }
}
#endif
