import APSweepProtoC
import Messages
import Records

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
            p.pointee.incarnation = m.incarnation
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
            p.pointee.attempt = m.attempt
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT
            env.pointee.heartbeat = p
        case let .progress(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Progress> = a.message(apsweep__v1__progress__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            (p.pointee.n_records, p.pointee.records) = a.pointers(try m.records.map { try record($0, a) })
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_PROGRESS
            env.pointee.progress = p
        case let .result(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Result> = a.message(apsweep__v1__result__init)
            p.pointee.task_id = a.string(m.taskID)
            p.pointee.attempt = m.attempt
            (p.pointee.n_records, p.pointee.records) = a.pointers(try m.records.map { try record($0, a) })
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
            p.pointee.unusable_blob = a.string(m.unusableBlob)
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
            p.pointee.max_blob_bytes = m.maxBlobBytes
            p.pointee.lease_ms = m.leaseMs
            env.pointee.body_case = APSWEEP__V1__ENVELOPE__BODY_WELCOME
            env.pointee.welcome = p
        case let .reject(m):
            let p: UnsafeMutablePointer<Apsweep__V1__Reject> = a.message(apsweep__v1__reject__init)
            p.pointee.reason = a.string(m.reason)
            p.pointee.supported_version = m.supportedVersion
            p.pointee.code = Apsweep__V1__RejectCode(rawValue: m.code.rawValue)
            p.pointee.task_id = a.string(m.taskID)
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
            p.pointee.code = Apsweep__V1__ShutdownCode(rawValue: m.code.rawValue)
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
            p.pointee.max_workers = m.maxWorkers
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
            (p.pointee.n_counters, p.pointee.counters) = a.pointers(m.counters.map { c -> UnsafeMutablePointer<Apsweep__V1__Counter> in
                let q: UnsafeMutablePointer<Apsweep__V1__Counter> = a.message(apsweep__v1__counter__init)
                q.pointee.name = a.string(c.name)
                q.pointee.value = c.value
                return q
            })
            p.pointee.correlations_age_ms = m.correlationsAgeMs
            p.pointee.workers_total = m.workersTotal
            p.pointee.damaged_records = m.damagedRecords
            if let pool = m.pool {
                let q: UnsafeMutablePointer<Apsweep__V1__PoolStatus> = a.message(apsweep__v1__pool_status__init)
                q.pointee.launcher = a.string(pool.launcher); q.pointee.wanted = pool.wanted; q.pointee.submitted = pool.submitted
                q.pointee.pending = pool.pending; q.pointee.running = pool.running; q.pointee.draining = pool.draining
                (q.pointee.n_pending_reasons, q.pointee.pending_reasons) = a.strings(pool.pendingReasons)
                q.pointee.last_decision = a.string(pool.lastDecision)
                p.pointee.pool = q
            }
            p.pointee.journal = a.string(m.journal)
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

    static func layer(_ l: MetricValues, _ a: CArena) -> UnsafeMutablePointer<Apsweep__V1__LayerMetrics> {
        let p: UnsafeMutablePointer<Apsweep__V1__LayerMetrics> = a.message(apsweep__v1__layer_metrics__init)
        p.pointee.layer = a.string(l.key)
        (p.pointee.n_values, p.pointee.values) = a.pointers(l.values.map { v -> UnsafeMutablePointer<Apsweep__V1__MetricValue> in
            let q: UnsafeMutablePointer<Apsweep__V1__MetricValue> = a.message(apsweep__v1__metric_value__init)
            q.pointee.name = a.string(v.0)
            q.pointee.value = v.1
            return q
        })
        return p
    }

    /// Where each of `EpochRecord.fields` lives in protobuf-c's EpochRecord struct, found by name
    /// through the generated descriptor: the scalar fields are mapped by the one table, not by
    /// hand. Nil when a field of the table is not a double of the .proto (a test checks).
    static let recordFieldOffsets: [Int]? = {
        withUnsafePointer(to: apsweep__v1__epoch_record__descriptor) { descriptor in
            var offsets: [Int] = []
            for f in EpochRecord.fields {
                guard let field = protobuf_c_message_descriptor_get_field_by_name(descriptor, f.name),
                      field.pointee.type == PROTOBUF_C_TYPE_DOUBLE, field.pointee.label != PROTOBUF_C_LABEL_REPEATED else { return nil }
                offsets.append(Int(field.pointee.offset))
            }
            return offsets
        }
    }()

    static func fieldOffsets() throws -> [Int] {
        guard let offsets = recordFieldOffsets else {
            throw WireError.encodingFailed("EpochRecord.fields names a field that is not a double of apsweep.v1.EpochRecord; regenerate Proto/ (Scripts/gen-proto)")
        }
        return offsets
    }

    static func record(_ r: EpochRecord, _ a: CArena) throws -> UnsafeMutablePointer<Apsweep__V1__EpochRecord> {
        let p: UnsafeMutablePointer<Apsweep__V1__EpochRecord> = a.message(apsweep__v1__epoch_record__init)
        p.pointee.epoch = UInt32(clamping: r.epoch)
        let raw = UnsafeMutableRawPointer(p)
        for (f, offset) in zip(EpochRecord.fields, try fieldOffsets()) { raw.storeBytes(of: r[keyPath: f.keyPath], toByteOffset: offset, as: Double.self) }
        (p.pointee.n_layers, p.pointee.layers) = a.pointers(r.layerMetrics.map { layer($0, a) })
        if let t = r.totalMetrics { p.pointee.total = layer(t, a) }
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
            h.incarnation = m.incarnation
            return .hello(h)
        case APSWEEP__V1__ENVELOPE__BODY_READY:
            return .ready(Ready(slots: try need(env.ready).slots))
        case APSWEEP__V1__ENVELOPE__BODY_HEARTBEAT:
            let m = try need(env.heartbeat)
            return .heartbeat(Heartbeat(taskID: text(m.task_id), epoch: m.epoch, step: m.step, attempt: m.attempt))
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
            return .failure(Failure(taskID: text(m.task_id), attempt: m.attempt, reason: text(m.reason), retryable: m.retryable != 0,
                                    unusableBlob: text(m.unusable_blob)))
        case APSWEEP__V1__ENVELOPE__BODY_BLOB_REQUEST:
            let m = try need(env.blob_request)
            return .blobRequest(BlobRequest(hash: text(m.hash), offset: m.offset, maxBytes: m.max_bytes))
        case APSWEEP__V1__ENVELOPE__BODY_WELCOME:
            let m = try need(env.welcome)
            var w = Welcome()
            w.coordinatorID = text(m.coordinator_id); w.sweepID = text(m.sweep_id)
            w.heartbeatIntervalMs = m.heartbeat_interval_ms; w.livenessMs = m.liveness_ms; w.maxChunkBytes = m.max_chunk_bytes
            w.maxBlobBytes = m.max_blob_bytes; w.leaseMs = m.lease_ms
            return .welcome(w)
        case APSWEEP__V1__ENVELOPE__BODY_REJECT:
            let m = try need(env.reject)
            return .reject(Reject(RejectCode(rawValue: m.code.rawValue) ?? .unspecified, text(m.reason), taskID: text(m.task_id),
                                  supportedVersion: m.supported_version))
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
            let m = try need(env.shutdown)
            return .shutdown(Shutdown(reason: text(m.reason), code: ShutdownCode(rawValue: m.code.rawValue) ?? .unspecified))
        case APSWEEP__V1__ENVELOPE__BODY_BLOB_CHUNK:
            let m = try need(env.blob_chunk)
            return .blobChunk(BlobChunk(hash: text(m.hash), offset: m.offset, totalSize: m.total_size, data: bytes(m.data), last: m.last != 0))
        case APSWEEP__V1__ENVELOPE__BODY_STATUS_REQUEST:
            let m = try need(env.status_request)
            return .statusRequest(StatusRequest(includeCorrelations: m.include_correlations != 0, maxFailures: m.max_failures, maxWorkers: m.max_workers))
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
            r.counters = try items(m.n_counters, m.counters) { (name: text($0.name), value: $0.value) }
            r.correlationsAgeMs = m.correlations_age_ms; r.workersTotal = m.workers_total; r.journal = text(m.journal)
            r.damagedRecords = m.damaged_records
            if let q = m.pool?.pointee {
                var pool = PoolStatus()
                pool.launcher = text(q.launcher); pool.wanted = q.wanted; pool.submitted = q.submitted; pool.pending = q.pending
                pool.running = q.running; pool.draining = q.draining; pool.pendingReasons = textArray(q.n_pending_reasons, q.pending_reasons)
                pool.lastDecision = text(q.last_decision)
                r.pool = pool
            }
            return .statusReply(r)
        default:
            throw WireError.emptyBody
        }
    }

    static func readLayer(_ l: Apsweep__V1__LayerMetrics) throws -> MetricValues {
        MetricValues(key: text(l.layer), values: try items(l.n_values, l.values) { (text($0.name), $0.value) })
    }

    static func readRecord(_ r: Apsweep__V1__EpochRecord) throws -> EpochRecord {
        var e = EpochRecord(epoch: Int(r.epoch))
        withUnsafePointer(to: r) { p in
            let raw = UnsafeRawPointer(p)
            for (f, offset) in zip(EpochRecord.fields, recordFieldOffsets ?? []) { e[keyPath: f.keyPath] = raw.load(fromByteOffset: offset, as: Double.self) }
        }
        e.layerMetrics = try items(r.n_layers, r.layers, readLayer)
        e.totalMetrics = try r.total.map { try readLayer($0.pointee) }
        return e
    }

    /// Counts the elements of a decoded C envelope's records before any Swift value is made, so
    /// that a frame within the size limit but holding a million tiny records is refused at once.
    static func checkSize(_ env: Apsweep__V1__Envelope, _ limits: DecodeLimits) throws {
        func check(_ n: Int, _ records: UnsafeMutablePointer<UnsafeMutablePointer<Apsweep__V1__EpochRecord>?>?) throws {
            guard n <= limits.maxRecords else {
                throw WireError.limitExceeded("\(n) records in one message (at most \(limits.maxRecords))")
            }
            guard let records else { return }
            var values = 0
            for i in 0..<n {
                guard let r = records[i] else { continue }
                values += 1 + (r.pointee.total.map { $0.pointee.n_values } ?? 0)
                for j in 0..<r.pointee.n_layers { values += 1 + (r.pointee.layers[j]?.pointee.n_values ?? 0) }
            }
            guard values <= limits.maxValues else {
                throw WireError.limitExceeded("\(values) metric values in one message (at most \(limits.maxValues))")
            }
        }
        switch env.body_case {
        case APSWEEP__V1__ENVELOPE__BODY_PROGRESS: if let m = env.progress { try check(m.pointee.n_records, m.pointee.records) }
        case APSWEEP__V1__ENVELOPE__BODY_RESULT: if let m = env.result { try check(m.pointee.n_records, m.pointee.records) }
        default: break
        }
    }
}
