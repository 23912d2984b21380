import APSweepProtoC

// Swift value ↔ protobuf-c struct, one pair of functions per message.

extension Codec {
    static func fill(_ env: UnsafeMutablePointer<Apsweep__V1__Envelope>, _ message: Message, _ a: CArena) throws {
        switch message {
        case let .hello(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Hello> = a.message(apsweep__v1__hello__init)
            p.pointee.worker_id = a.string(m.workerID)
            p.pointee.host = a.string(m.host)
            p.pointee.cores = m.cores
            p.pointee.software_version = a.string(m.softwareVersion)
            (p.pointee.n_data, p.pointee.data) = a.pointers(m.data.map { dataHolding($0, a) })
            (p.pointee.n_cached_blobs, p.pointee.cached_blobs) = a.strings(m.cachedBlobs)
            p.pointee.blas_threads = m.blasThreads
            p.pointee.running_task_id = a.string(m.runningTaskID)
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_HELLO
            env.pointee.hello = p
        case let .ready(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Ready> = a.message(apsweep__v1__ready__init)
            p.pointee.slots = m.slots
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_READY
            env.pointee.ready = p
        case let .heartbeat(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Heartbeat> = a.message(apsweep__v1__heartbeat__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.epoch = m.epoch
            p.pointee.step = m.step
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT
            env.pointee.heartbeat = p
        case let .progress(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Progress> = a.message(apsweep__v1__progress__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            (p.pointee.n_records, p.pointee.records) = a.pointers(m.records.map { record($0, a) })
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_PROGRESS
            env.pointee.progress = p
        case let .result(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Result> = a.message(apsweep__v1__result__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            (p.pointee.n_records, p.pointee.records) = a.pointers(m.records.map { record($0, a) })
            p.pointee.checkpoint_hash = a.string(m.checkpointHash)
            if let b = m.baseline {
                let s: UnsafeMutablePointer<Apsweep__V1__BaselineSummary> = a.message(apsweep__v1__baseline_summary__init)
                s.pointee.train_accuracy = b.trainAccuracy
                s.pointee.test_accuracy = b.testAccuracy
                s.pointee.train_loss = b.trainLoss
                s.pointee.test_loss = b.testLoss
                p.pointee.baseline = s
            }
            p.pointee.wall_seconds = m.wallSeconds
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_RESULT
            env.pointee.result = p
        case let .failure(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Failure> = a.message(apsweep__v1__failure__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            p.pointee.reason = a.string(m.reason)
            p.pointee.retryable = m.retryable ? 1 : 0
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_FAILURE
            env.pointee.failure = p
        case let .blobRequest(m):
            let p: UnsafeMutablePointer<Apsweep__V1__BlobRequest> = a.message(apsweep__v1__blob_request__init)
            p.pointee.hash = a.string(m.hash)
            p.pointee.offset = m.offset
            p.pointee.max_bytes = m.maxBytes
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_BLOB_REQUEST
            env.pointee.blob_request = p
        case let .welcome(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Welcome> = a.message(apsweep__v1__welcome__init)
            p.pointee.coordinator_id = a.string(m.coordinatorID)
            p.pointee.sweep_id = a.string(m.sweepID)
            p.pointee.heartbeat_interval_ms = m.heartbeatIntervalMs
            p.pointee.liveness_ms = m.livenessMs
            p.pointee.max_chunk_bytes = m.maxChunkBytes
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_WELCOME
            env.pointee.welcome = p
        case let .reject(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Reject> = a.message(apsweep__v1__reject__init)
            p.pointee.reason = a.string(m.reason)
            p.pointee.supported_version = m.supportedVersion
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_REJECT
            env.pointee.reject = p
        case let .assign(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Assign> = a.message(apsweep__v1__assign__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            p.pointee.lease_deadline_unix_ms = m.leaseDeadlineUnixMs
            p.pointee.spec_format = a.string(m.specFormat)
            p.pointee.spec = a.binary(m.spec)
            (p.pointee.n_required_blobs, p.pointee.required_blobs) = a.strings(m.requiredBlobs)
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_ASSIGN
            env.pointee.assign = p
        case let .heartbeatAck(m):
            let p: UnsafeMutablePointer<Apsweep__V1__HeartbeatAck> = a.message(apsweep__v1__heartbeat_ack__init)
            p.pointee.coordinator_unix_ms = m.coordinatorUnixMs
            p.pointee.lease_deadline_unix_ms = m.leaseDeadlineUnixMs
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT_ACK
            env.pointee.heartbeat_ack = p
        case let .cancel(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Cancel> = a.message(apsweep__v1__cancel__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.reason = a.string(m.reason)
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_CANCEL
            env.pointee.cancel = p
        case let .shutdown(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Shutdown> = a.message(apsweep__v1__shutdown__init)
            p.pointee.reason = a.string(m.reason)
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_SHUTDOWN
            env.pointee.shutdown = p
        case let .blobChunk(m):
            let p: UnsafeMutablePointer<Apsweep__V1__BlobChunk> = a.message(apsweep__v1__blob_chunk__init)
            p.pointee.hash = a.string(m.hash)
            p.pointee.offset = m.offset
            p.pointee.total_size = m.totalSize
            p.pointee.data = a.binary(m.data)
            p.pointee.last = m.last ? 1 : 0
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_BLOB_CHUNK
            env.pointee.blob_chunk = p
        case let .statusRequest(m):
            let p: UnsafeMutablePointer<Apsweep__V1__StatusRequest> = a.message(apsweep__v1__status_request__init)
            p.pointee.include_correlations = m.includeCorrelations ? 1 : 0
            p.pointee.max_failures = m.maxFailures
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_STATUS_REQUEST
            env.pointee.status_request = p
        case let .statusReply(m):
            let p: UnsafeMutablePointer<Apsweep__V1__StatusReply> = a.message(apsweep__v1__status_reply__init)
            p.pointee.sweep_id = a.string(m.sweepID)
            if let c = m.counts {
                let q: UnsafeMutablePointer<Apsweep__V1__TaskCounts> = a.message(apsweep__v1__task_counts__init)
                q.pointee.total = c.total; q.pointee.done = c.done; q.pointee.running = c.running; q.pointee.queued = c.queued
                q.pointee.stale = c.stale; q.pointee.failed = c.failed; q.pointee.blocked = c.blocked
                p.pointee.counts = q
            }
            (p.pointee.n_workers, p.pointee.workers) = a.pointers(m.workers.map { w -> UnsafeMutablePointer<Apsweep__V1__WorkerStatus> in
                let q: UnsafeMutablePointer<Apsweep__V1__WorkerStatus> = a.message(apsweep__v1__worker_status__init)
                q.pointee.worker_id = a.string(w.workerID); q.pointee.host = a.string(w.host); q.pointee.cores = w.cores
                q.pointee.current_task = a.string(w.currentTask); q.pointee.epoch = w.epoch; q.pointee.heartbeat_age_ms = w.heartbeatAgeMs
                q.pointee.tasks_done = w.tasksDone; q.pointee.state = a.string(w.state)
                return q
            })
            (p.pointee.n_recent_failures, p.pointee.recent_failures) = a.pointers(m.recentFailures.map { f -> UnsafeMutablePointer<Apsweep__V1__FailureInfo> in
                let q: UnsafeMutablePointer<Apsweep__V1__FailureInfo> = a.message(apsweep__v1__failure_info__init)
                q.pointee.task_id = a.string(f.taskID); q.pointee.worker_id = a.string(f.workerID); q.pointee.reason = a.string(f.reason)
                q.pointee.at_unix_ms = f.atUnixMs; q.pointee.attempt = f.attempt
                return q
            })
            (p.pointee.n_correlations, p.pointee.correlations) = a.pointers(m.correlations.map { c -> UnsafeMutablePointer<Apsweep__V1__CorrelationInfo> in
                let q: UnsafeMutablePointer<Apsweep__V1__CorrelationInfo> = a.message(apsweep__v1__correlation_info__init)
                q.pointee.metric = a.string(c.metric); q.pointee.target = a.string(c.target); q.pointee.method = a.string(c.method)
                q.pointee.scope = a.string(c.scope); q.pointee.value = c.value; q.pointee.ci_low = c.ciLow; q.pointee.ci_high = c.ciHigh
                q.pointee.points = c.points
                return q
            })
            p.pointee.eta_seconds = m.etaSeconds
            p.pointee.uptime_ms = m.uptimeMs
            p.pointee.late_results_dropped = m.lateResultsDropped
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_STATUS_REPLY
            env.pointee.status_reply = p
        }
    }

    static func dataHolding(_ d: DataHolding, _ a: CArena) -> UnsafeMutablePointer<Apsweep__V1__DataHolding> {
        let p: UnsafeMutablePointer<Apsweep__V1__DataHolding> = a.message(apsweep__v1__data_holding__init)
        p.pointee.dataset = a.string(d.dataset)
        p.pointee.shard_index = d.shardIndex
        p.pointee.shard_count = d.shardCount
        p.pointee.fingerprint = a.string(d.fingerprint)
        p.pointee.train_images = d.trainImages
        return p
    }

    static func layer(_ l: LayerMetricValues, _ a: CArena) -> UnsafeMutablePointer<Apsweep__V1__LayerMetrics> {
        let p: UnsafeMutablePointer<Apsweep__V1__LayerMetrics> = a.message(apsweep__v1__layer_metrics__init)
        p.pointee.layer = a.string(l.layer)
        (p.pointee.n_values, p.pointee.values) = a.pointers(l.values.map { v -> UnsafeMutablePointer<Apsweep__V1__MetricValue> in
            let q: UnsafeMutablePointer<Apsweep__V1__MetricValue> = a.message(apsweep__v1__metric_value__init)
            q.pointee.name = a.string(v.name)
            q.pointee.value = v.value
            return q
        })
        return p
    }

    static func record(_ r: WireEpochRecord, _ a: CArena) -> UnsafeMutablePointer<Apsweep__V1__EpochRecord> {
        let p: UnsafeMutablePointer<Apsweep__V1__EpochRecord> = a.message(apsweep__v1__epoch_record__init)
        p.pointee.epoch = r.epoch
        p.pointee.train_accuracy = r.trainAccuracy; p.pointee.train_loss = r.trainLoss
        p.pointee.test_accuracy = r.testAccuracy; p.pointee.test_loss = r.testLoss
        p.pointee.pd_train = r.pdTrain; p.pointee.pd_test = r.pdTest
        p.pointee.loss_diff_train = r.lossDiffTrain; p.pointee.loss_diff_test = r.lossDiffTest
        p.pointee.learning_rate = r.learningRate; p.pointee.seconds = r.seconds
        (p.pointee.n_layers, p.pointee.layers) = a.pointers(r.layers.map { layer($0, a) })
        if let t = r.total { p.pointee.total = layer(t, a) }
        return p
    }

    // MARK: decoding

    static func read(_ env: Apsweep__V1__Envelope) throws -> Message {
        func need<T>(_ p: UnsafeMutablePointer<T>?) throws -> T {
            guard let p else { throw WireError.undecodable("the body's message is missing") }
            return p.pointee
        }
        switch env.body_case {
        case APSWEEP__V1__ENVELOPE__BODY_HELLO:
            let m = try need(env.hello)
            var h = Hello()
            h.workerID = text(m.worker_id); h.host = text(m.host); h.cores = m.cores; h.softwareVersion = text(m.software_version)
            h.data = try items(m.n_data, m.data) { d in
                DataHolding(dataset: text(d.dataset), shardIndex: d.shard_index, shardCount: d.shard_count,
                            fingerprint: text(d.fingerprint), trainImages: d.train_images)
            }
            h.cachedBlobs = textArray(m.n_cached_blobs, m.cached_blobs)
            h.blasThreads = m.blas_threads
            h.runningTaskID = text(m.running_task_id)
            return .hello(h)
        case APSWEEP__V1__ENVELOPE__BODY_READY:
            return .ready(Ready(slots: try need(env.ready).slots))
        case APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT:
            let m = try need(env.heartbeat)
            return .heartbeat(Heartbeat(taskID: text(m.task_id), epoch: m.epoch, step: m.step))
        case APSWEEP__V1__ENVELOPE__BODY_PROGRESS:
            let m = try need(env.progress)
            return .progress(Progress(taskID: text(m.task_id), attempt: m.attempt, records: try items(m.n_records, m.records, readRecord)))
        case APSWEEP__V1__ENVELOPE__BODY_RESULT:
            let m = try need(env.result)
            var r = TaskResult()
            r.taskID = text(m.task_id); r.attempt = m.attempt
            r.records = try items(m.n_records, m.records, readRecord)
            r.checkpointHash = text(m.checkpoint_hash)
            r.baseline = m.baseline.map { BaselineSummary(trainAccuracy: $0.pointee.train_accuracy, testAccuracy: $0.pointee.test_accuracy,
                                                          trainLoss: $0.pointee.train_loss, testLoss: $0.pointee.test_loss) }
            r.wallSeconds = m.wall_seconds
            return .result(r)
        case APSWEEP__V1__ENVELOPE__BODY_FAILURE:
            let m = try need(env.failure)
            return .failure(Failure(taskID: text(m.task_id), attempt: m.attempt, reason: text(m.reason), retryable: m.retryable != 0))
        case APSWEEP__V1__ENVELOPE__BODY_BLOB_REQUEST:
            let m = try need(env.blob_request)
            return .blobRequest(BlobRequest(hash: text(m.hash), offset: m.offset, maxBytes: m.max_bytes))
        case APSWEEP__V1__ENVELOPE__BODY_WELCOME:
            let m = try need(env.welcome)
            var w = Welcome()
            w.coordinatorID = text(m.coordinator_id); w.sweepID = text(m.sweep_id)
            w.heartbeatIntervalMs = m.heartbeat_interval_ms; w.livenessMs = m.liveness_ms; w.maxChunkBytes = m.max_chunk_bytes
            return .welcome(w)
        case APSWEEP__V1__ENVELOPE__BODY_REJECT:
            let m = try need(env.reject)
            return .reject(Reject(reason: text(m.reason), supportedVersion: m.supported_version))
        case APSWEEP__V1__ENVELOPE__BODY_ASSIGN:
            let m = try need(env.assign)
            var s = Assign()
            s.taskID = text(m.task_id); s.attempt = m.attempt; s.leaseDeadlineUnixMs = m.lease_deadline_unix_ms
            s.specFormat = text(m.spec_format); s.spec = bytes(m.spec); s.requiredBlobs = textArray(m.n_required_blobs, m.required_blobs)
            return .assign(s)
        case APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT_ACK:
            let m = try need(env.heartbeat_ack)
            return .heartbeatAck(HeartbeatAck(coordinatorUnixMs: m.coordinator_unix_ms, leaseDeadlineUnixMs: m.lease_deadline_unix_ms))
        case APSWEEP__V1__ENVELOPE__BODY_CANCEL:
            let m = try need(env.cancel)
            return .cancel(Cancel(taskID: text(m.task_id), reason: text(m.reason)))
        case APSWEEP__V1__ENVELOPE__BODY_SHUTDOWN:
            return .shutdown(Shutdown(reason: text(try need(env.shutdown).reason)))
        case APSWEEP__V1__ENVELOPE__BODY_BLOB_CHUNK:
            let m = try need(env.blob_chunk)
            return .blobChunk(BlobChunk(hash: text(m.hash), offset: m.offset, totalSize: m.total_size, data: bytes(m.data), last: m.last != 0))
        case APSWEEP__V1__ENVELOPE__BODY_STATUS_REQUEST:
            let m = try need(env.status_request)
            return .statusRequest(StatusRequest(includeCorrelations: m.include_correlations != 0, maxFailures: m.max_failures))
        case APSWEEP__V1__ENVELOPE__BODY_STATUS_REPLY:
            let m = try need(env.status_reply)
            var r = StatusReply()
            r.sweepID = text(m.sweep_id)
            r.counts = m.counts.map { c in
                var t = TaskCounts()
                t.total = c.pointee.total; t.done = c.pointee.done; t.running = c.pointee.running; t.queued = c.pointee.queued
                t.stale = c.pointee.stale; t.failed = c.pointee.failed; t.blocked = c.pointee.blocked
                return t
            }
            r.workers = try items(m.n_workers, m.workers) { q in
                var w = WorkerStatus()
                w.workerID = text(q.worker_id); w.host = text(q.host); w.cores = q.cores; w.currentTask = text(q.current_task)
                w.epoch = q.epoch; w.heartbeatAgeMs = q.heartbeat_age_ms; w.tasksDone = q.tasks_done; w.state = text(q.state)
                return w
            }
            r.recentFailures = try items(m.n_recent_failures, m.recent_failures) { q in
                var f = FailureInfo()
                f.taskID = text(q.task_id); f.workerID = text(q.worker_id); f.reason = text(q.reason); f.atUnixMs = q.at_unix_ms; f.attempt = q.attempt
                return f
            }
            r.correlations = try items(m.n_correlations, m.correlations) { q in
                var c = CorrelationInfo()
                c.metric = text(q.metric); c.target = text(q.target); c.method = text(q.method); c.scope = text(q.scope)
                c.value = q.value; c.ciLow = q.ci_low; c.ciHigh = q.ci_high; c.points = q.points
                return c
            }
            r.etaSeconds = m.eta_seconds; r.uptimeMs = m.uptime_ms; r.lateResultsDropped = m.late_results_dropped
            return .statusReply(r)
        default:
            throw WireError.emptyBody
        }
    }

    static func readLayer(_ l: Apsweep__V1__LayerMetrics) throws -> LayerMetricValues {
        LayerMetricValues(layer: text(l.layer), values: try items(l.n_values, l.values) { MetricValue(text($0.name), $0.value) })
    }

    static func readRecord(_ r: Apsweep__V1__EpochRecord) throws -> WireEpochRecord {
        var e = WireEpochRecord()
        e.epoch = r.epoch
        e.trainAccuracy = r.train_accuracy; e.trainLoss = r.train_loss; e.testAccuracy = r.test_accuracy; e.testLoss = r.test_loss
        e.pdTrain = r.pd_train; e.pdTest = r.pd_test; e.lossDiffTrain = r.loss_diff_train; e.lossDiffTest = r.loss_diff_test
        e.learningRate = r.learning_rate; e.seconds = r.seconds
        e.layers = try items(r.n_layers, r.layers, readLayer)
        e.total = try r.total.map { try readLayer($0.pointee) }
        return e
    }
}
