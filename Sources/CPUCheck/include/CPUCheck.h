// The instruction set this build of apsweep was compiled for, checked before main().
//
// apsweep's numeric code is compiled for x86-64-v3 (AVX2, FMA) unless the build says otherwise
// (APSWEEP_CPU=x86-64 swift build ...; see Package.swift). On a CPU that lacks what the build uses,
// the first such instruction would kill the process with SIGILL, somewhere deep in a training
// step; instead a constructor checks the CPU before main() runs and exits with status 70 and a
// message that names the missing feature and the build to make.
#ifndef APSWEEP_CPUCHECK_H
#define APSWEEP_CPUCHECK_H

/// The -march level the numeric code was compiled for ("x86-64-v3", "x86-64", ...; "" off x86-64).
const char *apsweep_cpu_level(void);

#endif
