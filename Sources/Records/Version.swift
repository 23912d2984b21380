/// apsweep's version, reported by the CLI, sent in Hello, and written into journals and reports.
public let apsweepVersion = "0.1.0"
