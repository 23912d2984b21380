/// Memory behaviour for training loops.
public enum Allocator {
    /// Keeps freed tensor memory in the process instead of returning it to the kernel.
    ///
    /// Every step allocates and frees the same large activation buffers. glibc serves blocks over
    /// its mmap threshold with fresh mappings, and each fresh page costs a page fault on first
    /// touch (5–8 % of a LeNet-5 step here). Raising the mmap and trim thresholds to 1 GiB makes
    /// the buffers come back from the heap already mapped. Call once at process start.
    public static func keepFreedMemory() {
        #if os(Linux)
        _ = glibcMallopt(mTrimThreshold, 1 << 30)
        _ = glibcMallopt(mMmapThreshold, 1 << 30)
        #endif
    }
}

#if os(Linux)
// malloc.h is not part of Swift's Glibc module; these are glibc's values from <malloc.h>.
private let mTrimThreshold: Int32 = -1
private let mMmapThreshold: Int32 = -3
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
