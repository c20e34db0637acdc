"""test_input_limits.py - what the operator hands cdcflow that could hurt it or leak: oversized bad
messages (their dead letters must fit the dead-letter topic and the stream must go on) and secrets
in Kafka properties (never in PID files or logs).

Runs against the local stack (Kafka on 127.0.0.1:9092); every test uses private topic names.
"""

import os
import socket
import subprocess
import time
import uuid

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "orchestrate_streaming_pipelines.sh")
SECRETS = {
    "sasl.password": "pw-" + uuid.uuid4().hex,
    "ssl.key.password": "kp-" + uuid.uuid4().hex,
    "ssl.keystore.password": "ks-" + uuid.uuid4().hex,
    "ssl.key.pem": "pem-" + uuid.uuid4().hex,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(env, *args, timeout=120):
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_orchestrated_secrets_stay_out_of_pid_file_and_log(tmp_path, stack):
    topic = "cdcflow-it-secret-" + uuid.uuid4().hex[:8]
    log = tmp_path / "delta.log"
    props = []
    for i, (k, v) in enumerate(SECRETS.items()):
        # Both spellings getopt takes: "--kafka-prop K=V" and "--kafka-prop=K=V".
        props += ["--kafka-prop=%s=%s" % (k, v)] if i % 2 else ["--kafka-prop", "%s=%s" % (k, v)]
    env = dict(os.environ)
    env.update({
        "CDCFLOW_BIN": CDCFLOW,
        "CDCFLOW_RUN_DIR": str(tmp_path / "run"),
        "DELTA_LOG": str(log),
        "DELTA_METRICS_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "DELTA_ARGS": " ".join(["--topic", topic, "--table-path", str(tmp_path / "t"),
                                "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6]] + props),
        "SKIP_PREREQS": "1",
        "START_TIMEOUT": "60",
        "STOP_TIMEOUT": "60",
    })
    pid_file = tmp_path / "run" / "delta.pid"
    try:
        r = run_script(env, "start", "delta")
        assert r.returncode == 0, r.stdout + r.stderr
        text = pid_file.read_text()
        pid = int(text.splitlines()[0])
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert SECRETS["sasl.password"].encode() in f.read()   # the process has it, the file must not
        for k, v in SECRETS.items():
            assert v not in text, "%s saved in the PID file" % k
            assert k + "=***" in text
        # The masked command line still identifies the process.
        r = run_script(env, "status")
        assert "delta    running" in r.stdout, r.stdout + r.stderr
        assert pid_file.exists()
        for k, v in SECRETS.items():
            assert v not in r.stdout + r.stderr
    finally:
        r = run_script(env, "stop", "delta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not pid_file.exists()
    logged = log.read_text()
    assert "stopped cleanly" in logged
    for k, v in SECRETS.items():
        assert v not in logged, "%s in the log" % k

    # A PID file whose PID now belongs to another process is stale: removed, not trusted.
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_file.parent.mkdir(exist_ok=True)
        pid_file.write_text("%d\n%s\n" % (other.pid, text.splitlines()[1]))
        r = run_script(env, "status")
        assert "delta    stopped" in r.stdout, r.stdout + r.stderr
        assert not pid_file.exists()
        assert other.poll() is None                                 # and not signalled
    finally:
        other.kill()
        other.wait()
