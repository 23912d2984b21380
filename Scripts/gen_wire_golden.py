"""Golden frames from a second protobuf implementation (Python's official runtime).

    python3 -m venv /tmp/pb && /tmp/pb/bin/pip install grpcio-tools   # protoc for Python (PyPI), offline afterwards
    /tmp/pb/bin/python Scripts/gen_wire_golden.py

1. Builds the messages of Tests/WireTests/Samples.swift with Python's protobuf and writes them to
   Tests/WireTests/Golden/python/<name>.bin (the Swift tests decode them).
2. Runs the Swift test that writes apsweep's own encodings (APSWEEP_WIRE_DUMP), decodes each with
   Python, checks it equals the Python-built message field for field, and commits them as
   Golden/apsweep/<name>.bin (the Swift tests check our encoder still produces exactly these).
"""
import math
import os
import shutil
import subprocess
import sys
import tempfile

from grpc_tools import protoc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "Tests", "WireTests", "Golden")
tmp = tempfile.mkdtemp()
assert protoc.main(["protoc", f"-I{ROOT}/Proto", f"--python_out={tmp}", "apsweep.proto"]) == 0
sys.path.insert(0, tmp)
import apsweep_pb2 as pb  # noqa: E402

U32, U64 = 2**32 - 1, 2**64 - 1


def record():
    r = pb.EpochRecord(epoch=20, train_accuracy=99.5, train_loss=1e-300, test_accuracy=0, test_loss=-0.25,
                       pd_train=math.inf, pd_test=-math.inf, loss_diff_train=5e-324, loss_diff_test=sys.float_info.max,
                       learning_rate=0.05, seconds=12.5)
    r.layers.add(layer="classifier.4.weight", values=[pb.MetricValue(name="ap2", value=1.5), pb.MetricValue(name="ap3[gaussian:sigma2=1]", value=0.75)])
    r.total.CopyFrom(pb.LayerMetrics(layer="total", values=[pb.MetricValue(name="ap2", value=1.5)]))
    return r


def samples():
    hello = pb.Hello(worker_id="w-ü-1", host="node01.lab", cores=64, software_version="0.1.0",
                     cached_blobs=["", "deadbeef"], blas_threads=U32, running_task_id="t1", incarnation=U64)
    hello.data.add(dataset="fashion-mnist", shard_index=3, shard_count=4, fingerprint="ab" * 32, train_images=15000)
    hello.data.add(shard_count=1)
    result = pb.Result(task_id="abc", attempt=2, checkpoint_hash="ff", wall_seconds=61,
                       baseline=pb.BaselineSummary(train_accuracy=92.5, test_accuracy=90.25, train_loss=0.2, test_loss=0.3))
    result.records.extend([record(), pb.EpochRecord()])
    reply = pb.StatusReply(sweep_id="sweep", eta_seconds=120, uptime_ms=5, late_results_dropped=1,
                           counts=pb.TaskCounts(total=24, done=10, running=2, queued=11, stale=1))
    reply.workers.add(worker_id="w1", host="h", cores=2, current_task="t", epoch=3, heartbeat_age_ms=250, tasks_done=7, state="busy")
    reply.workers.add()
    reply.recent_failures.add(task_id="t", worker_id="w", reason="killed", at_unix_ms=1_700_000_000_000, attempt=1)
    reply.correlations.add(metric="ap3", target="pd_test", method="spearman", scope="final", value=0.8, ci_low=0.5, ci_high=0.95, points=12)
    reply.counters.add(name="rejects.NOT_LEASE_HOLDER", value=3)
    reply.counters.add(name="status-requests", value=U64)
    reply.correlations_age_ms = 1500
    reply.workers_total = 2
    reply.journal = "runs/x/sweep.db"
    E = pb.Envelope
    return {
        "hello": E(protocol_version=1, sequence=1, incarnation=1_764_633_600_000_123, hello=hello),
        "ready": E(protocol_version=1, sequence=0, ready=pb.Ready(slots=0)),
        "heartbeat": E(protocol_version=1, sequence=U64, heartbeat=pb.Heartbeat(task_id="t", epoch=7, step=U64, attempt=2)),
        "progress": E(protocol_version=1, sequence=3, progress=pb.Progress(task_id="t", attempt=1, records=[record()])),
        "result": E(protocol_version=1, sequence=4, result=result),
        "failure": E(protocol_version=1, sequence=5, failure=pb.Failure(task_id="t", attempt=3, reason="SIGTERM: node preempted", retryable=True, unusable_blob="ab")),
        "blob_request": E(protocol_version=1, sequence=6, blob_request=pb.BlobRequest(hash="h", offset=1 << 40, max_bytes=4 << 20)),
        "welcome": E(protocol_version=1, sequence=7, welcome=pb.Welcome(coordinator_id="c", sweep_id="s", heartbeat_interval_ms=1000, liveness_ms=5000, max_chunk_bytes=4 << 20,
                                                                        max_blob_bytes=4 << 30, lease_ms=15000)),
        "reject": E(protocol_version=2, sequence=8, reject=pb.Reject(reason="protocol version 2 is not supported", supported_version=1,
                                                                     code=pb.NOT_LEASE_HOLDER, task_id="t9")),
        "assign": E(protocol_version=1, sequence=9, assign=pb.Assign(task_id="t", attempt=U32, lease_deadline_unix_ms=U64, spec_format="apsweep.task.v1+json",
                                                                     spec=b'{"kind":"prune"}' + bytes([0, 255]), required_blobs=["h1", "h2", "h3"])),
        "heartbeat_ack": E(protocol_version=1, sequence=10, heartbeat_ack=pb.HeartbeatAck(coordinator_unix_ms=1, lease_deadline_unix_ms=2)),
        "cancel": E(protocol_version=1, sequence=11, cancel=pb.Cancel(task_id="t", reason="")),
        "shutdown": E(protocol_version=1, sequence=12, shutdown=pb.Shutdown(reason="sweep done", code=pb.COORDINATOR_STOPPING)),
        "blob_chunk": E(protocol_version=1, sequence=13, blob_chunk=pb.BlobChunk(hash="h", offset=0, total_size=300, data=bytes(i % 256 for i in range(300)), last=True)),
        "status_request": E(protocol_version=1, sequence=14, status_request=pb.StatusRequest(include_correlations=True, max_failures=10, max_workers=50)),
        "status_reply": E(protocol_version=1, sequence=15, status_reply=reply),
    }


def main():
    built = samples()
    py_dir, ours_dir = os.path.join(GOLDEN, "python"), os.path.join(GOLDEN, "apsweep")
    shutil.rmtree(py_dir, ignore_errors=True)
    os.makedirs(py_dir)
    os.makedirs(ours_dir, exist_ok=True)
    for name, msg in built.items():
        with open(os.path.join(py_dir, name + ".bin"), "wb") as f:
            f.write(msg.SerializeToString())
    dump = tempfile.mkdtemp()
    env = dict(os.environ, APSWEEP_WIRE_DUMP=dump)
    # The Swift test writes its encodings first, then compares them with the committed files; after
    # an intended encoding change that comparison fails until this script has verified and replaced
    # them, so its exit status is not checked here.
    subprocess.run(["swift", "test", "--filter", "WireGoldenTests/testOwnEncodingsAreTheOnesPythonVerified"], cwd=ROOT, env=env)
    for name, msg in built.items():
        data = open(os.path.join(dump, name + ".bin"), "rb").read()
        decoded = pb.Envelope()
        decoded.ParseFromString(data)
        assert decoded == msg, f"{name}: Python decodes apsweep's bytes to a different message:\n{decoded}\nvs\n{msg}"
        shutil.copy(os.path.join(dump, name + ".bin"), os.path.join(ours_dir, name + ".bin"))
    print(f"{len(built)} messages: Python's encodings written, apsweep's encodings verified by Python and written")


if __name__ == "__main__":
    main()
