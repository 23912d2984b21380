#define _GNU_SOURCE
#include "COpenBLAS.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint,
                         blasint, float, const float *, blasint, const float *, blasint, float, float *,
                         blasint);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*corename_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[512];
static const char *chosen = NULL;
static sgemm_fn p_sgemm;
static set_threads_fn p_set_threads;
static get_threads_fn p_get_threads;
static corename_fn p_corename;

/// The best kernel family of OpenBLAS 0.3.21 that this CPU can run, by its features.
static const char *best_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    if (__builtin_cpu_supports("avx"))
        return "Sandybridge";
    return NULL;
}

static void *open_first(const char *const *names) {
    for (int i = 0; names[i]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        if (h) return h;
    }
    return NULL;
}

static void load_once(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user == NULL || user[0] == '\0') {
        chosen = best_coretype();
        if (chosen) setenv("OPENBLAS_CORETYPE", chosen, 1);
    }
    static const char *const names[] = {
        "libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "libopenblas.so",
        NULL,
    };
    void *h = open_first(names);
    if (!h) {
        snprintf(load_error, sizeof load_error,
                 "cannot load OpenBLAS (%s); install it with: apt-get install libopenblas0-pthread", dlerror());
        return;
    }
    p_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    p_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    p_get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    p_corename = (corename_fn)dlsym(h, "openblas_get_corename");
    if (!p_sgemm || !p_set_threads || !p_get_threads || !p_corename) {
        snprintf(load_error, sizeof load_error, "the loaded OpenBLAS lacks cblas_sgemm or openblas_* symbols");
        return;
    }
    load_status = 0;
}

int apsweep_blas_load(void) {
    pthread_once(&once, load_once);
    return load_status;
}

const char *apsweep_blas_error(void) { return load_status == 0 ? NULL : load_error; }
const char *apsweep_blas_chosen_coretype(void) { apsweep_blas_load(); return chosen; }

static void require(void) {
    if (apsweep_blas_load() != 0) {
        fprintf(stderr, "apsweep: %s\n", load_error);
        abort();
    }
}

const char *apsweep_blas_corename(void) { require(); return p_corename(); }
void apsweep_blas_set_threads(int threads) { require(); p_set_threads(threads); }
int apsweep_blas_threads(void) { require(); return p_get_threads(); }

void apsweep_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB,
                   int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    if (__builtin_expect(p_sgemm == NULL, 0)) require();
    p_sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
