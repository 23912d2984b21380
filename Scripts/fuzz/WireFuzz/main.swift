import Wire

/// libFuzzer entry: every input must decode to an envelope or throw a WireError, and a decoded
/// envelope must survive a re-encode/decode round trip unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let envelope = try? Codec.decode(bytes) else { return 0 }
    guard let again = try? Codec.decode(try Codec.encode(envelope)) else { fatalError("re-encoding a decoded envelope failed") }
    precondition(again.message.name == envelope.message.name, "round trip changed the message type")
    return 0
}

// SwiftPM links an executable's entry point as <Module>_main; hand control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("WireFuzz_main")
public func wireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzEnvelope(data, size) }
}
