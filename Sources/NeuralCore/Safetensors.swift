import Foundation

/// Reading and writing the safetensors format (the format of `safetensors.torch.save_file`).
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each key to
/// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of the header),
/// then the raw little-endian data. apsweep writes F32 (and I64 for integer buffers such as
/// `num_batches_tracked`) and reads F32, F64, F16, BF16, I64 and I32 into Float32.
public enum Safetensors {
    /// One tensor of a file.
    public struct Entry: Sendable {
        public var tensor: Tensor
        /// The element type in the file ("F32", "BF16", …).
        public var dtype: String
    }

    /// Reads every tensor of the file at `path`. Errors name the file and what is wrong with it.
    public static func read(path: String) throws -> (tensors: [String: Entry], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NeuralCoreError.malformedFile(path: path, reason: "cannot read the file (missing or not readable)")
        }
        return try decode(data, name: path)
    }

    /// Parses safetensors bytes; `name` is used in error messages.
    public static func decode(_ data: Data, name: String) throws -> (tensors: [String: Entry], metadata: [String: String]) {
        func fail(_ why: String) -> NeuralCoreError { .malformedFile(path: name, reason: "not a valid safetensors file: \(why)") }
        guard data.count >= 8 else { throw fail("shorter than the 8-byte header length") }
        let bytes = [UInt8](data)
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n >= 2, n <= UInt64(bytes.count - 8), n <= 100 << 20 else {
            throw fail("header length \(n) does not fit a file of \(bytes.count) bytes")
        }
        let headerEnd = 8 + Int(n)
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
              let header = json as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        let dataSize = bytes.count - headerEnd
        var ranges: [(Int, Int, String)] = []
        var metadata: [String: String] = [:]
        var tensors: [String: Entry] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = v as? String ?? "\(v)" }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offsets.count == 2 else {
                throw fail("entry \(key) lacks dtype, shape or data_offsets")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("entry \(key) has a negative dimension") }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, product <= 1 << 40 else { throw fail("entry \(key): shape \(shape) has more elements than any file can hold") }
                count = product
            }
            let size: Int
            switch dtype {
            case "F32", "I32": size = 4
            case "F64", "I64": size = 8
            case "F16", "BF16": size = 2
            default: throw fail("entry \(key) has dtype \(dtype); apsweep reads F32, F64, F16, BF16, I64 and I32")
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize, offsets[1] - offsets[0] == count * size else {
                throw fail("entry \(key): data_offsets \(offsets) do not hold \(count) × \(dtype) in \(dataSize) data bytes")
            }
            ranges.append((offsets[0], offsets[1], key))
            let base = headerEnd + offsets[0]
            let tensor = Tensor(shape: shape, unsafeUninitialized: { out in
                bytes.withUnsafeBufferPointer { raw in
                    let p = UnsafeRawPointer(raw.baseAddress! + base)
                    for i in 0..<count {
                        switch dtype {
                        case "F32": out[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                        case "F64": out[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                        case "I64": out[i] = Float(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                        case "I32": out[i] = Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                        case "BF16":
                            let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                            out[i] = Float(bitPattern: UInt32(h) << 16)
                        default: // F16
                            let h = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                            out[i] = Float(Float16(bitPattern: h))
                        }
                    }
                }
            })
            tensors[key] = Entry(tensor: tensor, dtype: dtype)
        }
        // Two tensors may not share bytes (a crafted or corrupt header).
        let sorted = ranges.filter { $0.0 < $0.1 }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.0 < a.1 {
            throw fail("entries \(a.2) and \(b.2) overlap (bytes \(b.0)…\(min(a.1, b.1)) belong to both)")
        }
        return (tensors, metadata)
    }

    /// Encodes tensors (F32, or I64 where the type says so) with keys in sorted order.
    public static func encode(_ tensors: [(key: String, value: Tensor, type: BufferType)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let sorted = tensors.sorted { $0.key < $1.key }
        for t in sorted {
            let size = t.value.count * (t.type == .int64 ? 8 : 4)
            header[t.key] = ["dtype": t.type == .int64 ? "I64" : "F32", "shape": t.value.shape, "data_offsets": [offset, offset + size]]
            offset += size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad with spaces to 8-byte alignment
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in sorted {
            if t.type == .int64 {
                for v in t.value.scalars { withUnsafeBytes(of: Int64(v).littleEndian) { out.append(contentsOf: $0) } }
            } else {
                t.value.scalars.withUnsafeBufferPointer { out.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
            }
        }
        return out
    }

    /// Throws naming the first of `keys` (all when nil) whose tensor holds NaN or ±∞.
    public static func checkFinite(_ tensors: [String: Tensor], keys: [String]? = nil, path: String) throws {
        for key in (keys ?? Array(tensors.keys)).sorted() {
            guard let t = tensors[key], let bad = t.scalars.firstIndex(where: { !$0.isFinite }) else { continue }
            throw NeuralCoreError.malformedFile(path: path, reason: "tensor \(key) holds \(t.scalars[bad]) at index \(bad); weights must be finite (a diverged training?)")
        }
    }

    /// Writes `model`'s state dict to `path` (atomically: a temporary file renamed into place).
    public static func write(_ model: Model, to path: String, metadata: [String: String] = [:]) throws {
        let data = try encode(model.stateDict(), metadata: metadata)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Loads the file at `path` into `model`; a mismatch names missing, extra and misshaped keys.
    public static func load(_ model: Model, from path: String) throws {
        let (tensors, _) = try read(path: path)
        do {
            try model.load(tensors.mapValues(\.tensor))
        } catch let error as NeuralCoreError {
            throw NeuralCoreError.malformedFile(path: path, reason: error.description)
        }
    }
}
