// OpenBLAS, loaded at run time.
//
// Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks its kernels in a library
// constructor, reading OPENBLAS_CORETYPE from the environment. On CPUs it does not know (AMD Zen 4
// among them) it falls back to Prescott kernels, 3-5x slower on sgemm. A library linked at build
// time is loaded before main() runs, too early to set the variable, so apsweep loads OpenBLAS with
// dlopen on first use instead: apsweep_blas_load() sets OPENBLAS_CORETYPE from the CPU's features
// when (and only when) the user has not set it, then loads the library.
#ifndef APSWEEP_COPENBLAS_H
#define APSWEEP_COPENBLAS_H

#include <cblas.h>

/// Loads OpenBLAS once (thread-safe). Returns 0 on success; on failure returns -1 and
/// apsweep_blas_error() says why. Every other function here loads the library if needed.
int apsweep_blas_load(void);
/// Why the last load failed, or NULL.
const char *apsweep_blas_error(void);
/// The OPENBLAS_CORETYPE value apsweep chose, or NULL when the user's own setting was kept
/// (or the CPU has no better kernel than OpenBLAS's own choice).
const char *apsweep_blas_chosen_coretype(void);
/// openblas_get_corename(): the kernel family in use ("SkylakeX", "Haswell", "Prescott", ...).
const char *apsweep_blas_corename(void);
void apsweep_blas_set_threads(int threads);
int apsweep_blas_threads(void);

void apsweep_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB,
                   int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);

#endif
