import COpenSSLCrypto

/// Incremental SHA-256 through OpenSSL's EVP interface: the content address of checkpoints and
/// blobs, the fingerprint of data shards, and the task id (a prefix of the hash of its spec).
public final class SHA256Hasher {
    private let context: OpaquePointer
    private var digest: String?

    public init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        if digest == nil, bytes.count > 0 { EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) }
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
    public func update(_ text: String) { update(Array(text.utf8)) }
    public func update<T: FixedWidthInteger>(littleEndian value: T) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    /// The digest as 64 lowercase hex digits. Finishes the hash: later updates are ignored.
    public func hexDigest() -> String {
        if let digest { return digest }
        var bytes = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &bytes, &length)
        let hex = hexString(bytes)
        digest = hex
        return hex
    }
}

import Foundation

extension SHA256Hasher {
    /// The SHA-256 of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: [UInt8]) -> String {
        let h = SHA256Hasher()
        h.update(bytes)
        return h.hexDigest()
    }

    /// Whether `text` has the form of a SHA-256 in hex (64 lowercase or uppercase hex digits).
    public static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }
    }
}

/// Lowercase hex of `bytes`.
public func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8](repeating: 0, count: bytes.count * 2)
    for (i, b) in bytes.enumerated() {
        out[2 * i] = digits[Int(b >> 4)]
        out[2 * i + 1] = digits[Int(b & 15)]
    }
    return String(decoding: out, as: UTF8.self)
}
