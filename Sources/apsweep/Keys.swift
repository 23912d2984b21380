import ArgumentParser
import Foundation
import Wire

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (give it to the other side).")
    @Argument(help: "Base path, e.g. keys/coordinator or keys/worker-node01.") var name: String

    func run() throws {
        guard ZMQContext.hasCurve else { throw CLIError("this libzmq has no CURVE support; install Debian's libzmq5 (built with libsodium)") }
        let dir = (name as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        if FileManager.default.fileExists(atPath: name + ".key") { throw CLIError("\(name).key exists; refusing to overwrite a secret key") }
        let keys = try CurveKeyPair.generate()
        try keys.write(to: name)
        print("wrote \(name).key (secret) and \(name).pub: public key \(keys.publicKey)")
    }
}
