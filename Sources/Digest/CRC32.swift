import CZlib

/// CRC-32 (zlib's, the IEEE 802.3 polynomial) of stored bytes: the checksum a journal record or a
/// blob's manifest carries so that a flipped bit is found on read instead of used.
public enum CRC32 {
    /// The checksum of `bytes`.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return UInt32(crc32(0, nil, 0)) }
        // zlib takes a 32-bit length: feed larger buffers in pieces.
        var crc = crc32(0, nil, 0)
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            crc = crc32(crc, base.advanced(by: offset).assumingMemoryBound(to: UInt8.self), uInt(n))
            offset += n
        }
        return UInt32(crc)
    }

    public static func of(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { of($0) } }
}
