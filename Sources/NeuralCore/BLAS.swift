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

    /// OpenBLAS's thread count for each GEMM. Setting it applies to the whole process.
    public static var threads: Int {
        get { Int(apsweep_blas_threads()) }
        set { apsweep_blas_set_threads(Int32(max(1, newValue))) }
    }

    /// A one-line description for logs: `OpenBLAS core SkylakeX (chosen by apsweep), 2 threads`.
    public static var summary: String {
        let how = chosenCoreType != nil ? "chosen by apsweep" :
            (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "OPENBLAS_CORETYPE=\($0) from the environment" } ?? "OpenBLAS's own choice")
        return "OpenBLAS core \(coreName) (\(how)), \(threads) thread\(threads == 1 ? "" : "s")"
    }

    /// C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is m×k, op(B) is k×n, C is m×n.
    /// Leading dimensions are the row strides of the matrices as stored.
    @inlinable
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        apsweep_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
