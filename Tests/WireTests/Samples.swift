import Messages
import Records
@testable import Wire

/// One envelope per message type with boundary values. Scripts/gen_wire_golden.py builds the same
/// messages with Python's protobuf runtime; keep the two lists in step.
enum Samples {
    static let maxU32 = UInt32.max, maxU64 = UInt64.max

    static var all: [(String, Envelope)] {
        var hello = Hello()
        hello.workerID = "w-ü-1"; hello.host = "node01.lab"; hello.cores = 64; hello.softwareVersion = "0.1.0"
        hello.data = [DataHolding(dataset: "fashion-mnist", shardIndex: 3, shardCount: 4, fingerprint: String(repeating: "ab", count: 32), trainImages: 15_000),
                      DataHolding()]
        hello.cachedBlobs = ["", "deadbeef"]; hello.blasThreads = maxU32; hello.runningTaskID = "t1"; hello.incarnation = maxU64
        var record = EpochRecord(epoch: 20)
        record.trainAccuracy = 99.5; record.trainLoss = 1e-300; record.testAccuracy = 0; record.testLoss = -0.25
        record.pdTrain = .infinity; record.pdTest = -.infinity; record.lossDiffTrain = 5e-324; record.lossDiffTest = .greatestFiniteMagnitude
        record.learningRate = 0.05; record.seconds = 12.5
        record.layerMetrics = [MetricValues(key: "classifier.4.weight", values: [("ap2", 1.5), ("ap3[gaussian:sigma2=1]", 0.75)])]
        record.totalMetrics = MetricValues(key: "total", values: [("ap2", 1.5)])
        var result = TaskResult()
        result.taskID = "abc"; result.attempt = 2; result.records = [record, EpochRecord(epoch: 0)]; result.checkpointHash = "ff"
        result.baseline = BaselineSummary(trainAccuracy: 92.5, testAccuracy: 90.25, trainLoss: 0.2, testLoss: 0.3); result.wallSeconds = 61
        var welcome = Welcome()
        welcome.coordinatorID = "c"; welcome.sweepID = "s"; welcome.heartbeatIntervalMs = 1000; welcome.livenessMs = 5000; welcome.maxChunkBytes = 4 << 20
        welcome.maxBlobBytes = 4 << 30; welcome.leaseMs = 15000
        var assign = Assign()
        assign.taskID = "t"; assign.attempt = maxU32; assign.leaseDeadlineUnixMs = maxU64; assign.specFormat = "apsweep.task.v1+json"
        assign.spec = Array("{\"kind\":\"prune\"}".utf8) + [0, 255]; assign.requiredBlobs = ["h1", "h2", "h3"]
        var reply = StatusReply()
        reply.sweepID = "sweep"
        var counts = TaskCounts()
        counts.total = 24; counts.done = 10; counts.running = 2; counts.queued = 11; counts.stale = 1; counts.failed = 0; counts.blocked = 0
        reply.counts = counts
        var worker = WorkerStatus()
        worker.workerID = "w1"; worker.host = "h"; worker.cores = 2; worker.currentTask = "t"; worker.epoch = 3; worker.heartbeatAgeMs = 250; worker.tasksDone = 7; worker.state = "busy"
        reply.workers = [worker, WorkerStatus()]
        var failure = FailureInfo()
        failure.taskID = "t"; failure.workerID = "w"; failure.reason = "killed"; failure.atUnixMs = 1_700_000_000_000; failure.attempt = 1
        reply.recentFailures = [failure]
        var corr = CorrelationInfo()
        corr.metric = "ap3"; corr.target = "pd_test"; corr.method = "spearman"; corr.scope = "final"; corr.value = 0.8; corr.ciLow = 0.5; corr.ciHigh = 0.95; corr.points = 12
        reply.correlations = [corr]; reply.etaSeconds = 120; reply.uptimeMs = 5; reply.lateResultsDropped = 1
        reply.counters = [("rejects.NOT_LEASE_HOLDER", 3), ("status-requests", maxU64)]; reply.correlationsAgeMs = 1500; reply.workersTotal = 2
        reply.journal = "runs/x/sweep.db"
        return [
            ("hello", Envelope(.hello(hello), sequence: 1, incarnation: 1_764_633_600_000_123)),
            ("ready", Envelope(.ready(Ready(slots: 0)), sequence: 0)),
            ("heartbeat", Envelope(.heartbeat(Heartbeat(taskID: "t", epoch: 7, step: maxU64, attempt: 2)), sequence: maxU64)),
            ("progress", Envelope(.progress(Progress(taskID: "t", attempt: 1, records: [record])), sequence: 3)),
            ("result", Envelope(.result(result), sequence: 4)),
            ("failure", Envelope(.failure(Failure(taskID: "t", attempt: 3, reason: "SIGTERM: node preempted", retryable: true, unusableBlob: "ab")), sequence: 5)),
            ("blob_request", Envelope(.blobRequest(BlobRequest(hash: "h", offset: 1 << 40, maxBytes: 4 << 20)), sequence: 6)),
            ("welcome", Envelope(.welcome(welcome), sequence: 7)),
            ("reject", Envelope(.reject(Reject(.notLeaseHolder, "protocol version 2 is not supported", taskID: "t9", supportedVersion: 1)), sequence: 8, version: 2)),
            ("assign", Envelope(.assign(assign), sequence: 9)),
            ("heartbeat_ack", Envelope(.heartbeatAck(HeartbeatAck(coordinatorUnixMs: 1, leaseDeadlineUnixMs: 2)), sequence: 10)),
            ("cancel", Envelope(.cancel(Cancel(taskID: "t", reason: "")), sequence: 11)),
            ("shutdown", Envelope(.shutdown(Shutdown(reason: "sweep done", code: .coordinatorStopping)), sequence: 12)),
            ("blob_chunk", Envelope(.blobChunk(BlobChunk(hash: "h", offset: 0, totalSize: 300, data: (0..<300).map { UInt8($0 % 256) }, last: true)), sequence: 13)),
            ("status_request", Envelope(.statusRequest(StatusRequest(includeCorrelations: true, maxFailures: 10, maxWorkers: 50)), sequence: 14)),
            ("status_reply", Envelope(.statusReply(reply), sequence: 15)),
        ]
    }
}
