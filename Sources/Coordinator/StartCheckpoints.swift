import BlobStore
import Digest
import Experiment
import Foundation
import Journal
import NeuralCore

/// The checkpoints a sweep's models start from (`models[i].checkpoint(s)`), made ready before
/// the plan: each file is read, checked against its model (every key and shape, strictly, and
/// finite weights), stored as a content-addressed blob that workers fetch like any baseline, and
/// its SHA-256 journaled under `checkpoint:<path>`. On resume a file whose bytes changed is
/// refused by name (the journal's results were measured from the old one); a file that is gone
/// is fine while the journal's blob still holds it.
public enum StartCheckpoints {
    /// The hash of every checkpoint file by path (what `Plan` puts into the baseline tasks).
    public static func prepare(_ sweep: SweepFile, journal: SweepJournal, blobs: BlobStore) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for (m, start) in sweep.starts.enumerated() {
            guard let start else { continue }
            for (i, file) in start.checkpoints.enumerated() where hashes[file] == nil {
                let name = start.name(model: m, file: i)
                let key = "checkpoint:" + file
                let journaled = try journal.meta(key)
                guard let data = FileManager.default.contents(atPath: file) else {
                    if let journaled, blobs.verify(journaled) {
                        hashes[file] = journaled   // moved away since; the stored copy is the one planned
                        continue
                    }
                    throw SweepError.invalid("\(name): cannot read \(file); give the path of a .safetensors file (relative to the sweep file)")
                }
                let bytes = [UInt8](data)
                let hash = SHA256Hasher.hex(bytes)
                if let journaled, journaled != hash {
                    throw SweepError.invalid("\(name): \(file) changed since this journal was planned (SHA-256 \(journaled.prefix(16))… then, \(hash.prefix(16))… now); the sweep's results come from the old file: put it back, or start a new journal (--dir / --journal) for the new one")
                }
                if journaled == nil {
                    try check(file, name: name, model: sweep.models[m])
                }
                if !blobs.verify(hash) { try blobs.store(bytes) }
                try journal.apply([.blob(hash: hash, size: UInt64(bytes.count))])
                if journaled == nil { try journal.setMeta(key, hash) }
                hashes[file] = hash
            }
        }
        return hashes
    }

    /// The hash of every checkpoint file, each checked, nothing stored (`apsweep plan`).
    public static func inspect(_ sweep: SweepFile) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for (m, start) in sweep.starts.enumerated() {
            guard let start else { continue }
            for (i, file) in start.checkpoints.enumerated() where hashes[file] == nil {
                let name = start.name(model: m, file: i)
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw SweepError.invalid("\(name): cannot read \(file); give the path of a .safetensors file (relative to the sweep file)")
                }
                try check(file, name: name, model: sweep.models[m])
                hashes[file] = SHA256Hasher.hex([UInt8](data))
            }
        }
        return hashes
    }

    /// Refuses a file that would not load into `model` on a worker: not safetensors, keys or
    /// shapes of another network, NaN or ±∞ weights.
    static func check(_ file: String, name: String, model: ModelSpec) throws {
        do { _ = try Checkpoint.model(path: file, spec: model) } catch {
            throw SweepError.invalid("\(name): \(file) does not fit \(model.name) (width \(model.width), input \(model.inputShape.map(String.init).joined(separator: "×")), \(model.classes) classes): \(error)")
        }
    }
}
