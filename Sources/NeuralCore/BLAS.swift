import COpenBLAS
import Foundation

/// OpenBLAS: loading, kernel choice, thread count and the GEMM every layer uses.
///
/// The library is loaded on first use. Unless the process environment already sets
/// `OPENBLAS_CORETYPE` (a user's own choice always wins), apsweep sets it to the best kernel family
/// the CPU supports before loading, because Debian's OpenBLAS 0.3.21 otherwise runs its slow
/// Prescott kernels on CPUs newer than it knows.
public enum BLAS {
    /// Loads OpenBLAS now; throws `NeuralCoreError.blasUnavailable` with the reason if it cannot.
    public static func load() throws {
        if apsweep_blas_load() != 0 {
            throw NeuralCoreError.blasUnavailable(String(cString: apsweep_blas_error()))
        }
    }

    /// The kernel family in use, as `openblas_get_corename()` reports it (e.g. "SkylakeX").
    public static var coreName: String { String(cString: apsweep_blas_corename()) }

    /// The `OPENBLAS_CORETYPE` apsweep set, or nil when it kept the user's setting.
    public static var chosenCoreType: String? {
        apsweep_blas_chosen_coretype().map { String(cString: $0) }
    }

    /// Threads a large GEMM is split over (and that layers use for their own parallel loops).
    ///
    /// apsweep runs OpenBLAS itself single-threaded and splits work on its own threads: a large
    /// GEMM into column (or row) blocks, a convolution over images. Small GEMMs, as in LeNet-5 or
    /// late VGG layers, gain nothing from OpenBLAS's threading, while splitting the batch does.
    public static var threads: Int {
        get { configuredThreads }
        set {
            try? load()
            apsweep_blas_set_threads(1)
            configuredThreads = max(1, newValue)
            Compute.threads = configuredThreads
        }
    }
    nonisolated(unsafe) private static var configuredThreads = 1

    /// A one-line description for logs: `OpenBLAS core SkylakeX (chosen by apsweep), 2 threads`.
    public static var summary: String {
        let how = chosenCoreType != nil ? "chosen by apsweep" :
            (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "OPENBLAS_CORETYPE=\($0) from the environment" } ?? "OpenBLAS's own choice")
        return "OpenBLAS core \(coreName) (\(how)), \(threads) thread\(threads == 1 ? "" : "s")"
    }

    /// C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is m×k, op(B) is k×n, C is m×n.
    /// Leading dimensions are the row strides of the matrices as stored. With `threads` > 1 and
    /// enough work, C is split into `threads` blocks of columns (or rows, when m is larger) that
    /// run concurrently; callers already running in parallel pass `threads: 1`.
    @inlinable
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = BLAS.threads) {
        if m == 0 || n == 0 { return }
        let parts = Swift.min(threads, Swift.max(m, n) / 16)
        if parts <= 1 || m * n * k < 1 << 18 {
            kernel(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        let splitColumns = n >= m
        Compute.parallel(parts) { part in
            if splitColumns {
                let j0 = n * part / parts, j1 = n * (part + 1) / parts
                kernel(transA, transB, m, j1 - j0, k, alpha, a, lda, transB ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc)
            } else {
                let i0 = m * part / parts, i1 = m * (part + 1) / parts
                kernel(transA, transB, i1 - i0, n, k, alpha, transA ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * ldc, ldc)
            }
        }
    }

    @usableFromInline
    static func kernel(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                       _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                       _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        apsweep_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
