#!/usr/bin/env python3
"""tests/integration/tls_test.py BINDIR CASE: the fleet over TLS and authentication.

Each case starts a private service on loopback with certificates it makes
with the `openssl` command, runs `mutirao-worker` and `mutirao run --fleet`
against it (submit, run, result, await, a WaitGroup, pool_stats), then checks
that a wrong password and an untrusted certificate fail with a clear message
naming the server and never showing a secret.
  redis: redis-server with only a TLS port and an ACL user (the default user
         off): rediss://, redis.tls_ca_file, redis.password_file (also
         `mutirao dlq`); Kafka is the shared one of tests/services.sh.
  kafka: a single-node KRaft Kafka (the jars tests/services.sh caches) with a
         SASL_SSL listener (PEM keystore, PLAIN and SCRAM-SHA-512 users) and
         an SSL listener that requires a client certificate:
         kafka.security_protocol, kafka.sasl_*, kafka.ssl_ca_file,
         kafka.property.*; Redis is a private plain redis-server. SCRAM
         against Kafka 4 needs librdkafka 2.6.1 or newer (older ones send a
         client proof Kafka 4 rejects; Debian 12 has 2.0.2): with an older
         one the SCRAM run is left out, saying so.
A missing prerequisite skips the case (exit 77) with the reason, or fails it
when CI is set (.ci/run installs everything).
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import private_redis as private_redis_server  # noqa: E402
from mutirao_test import free_port, tcp_open  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
T = mutirao_test.Run(BIN, "mutirao-tls-")
TMP, UNIQ = T.tmp, T.uniq
PROCS = []  # (Popen, name): stopped at the end whatever happens
skip, fail, check = T.skip, T.fail, T.check


def make_certs():
    """mutirao_test.make_certs in TMP: ca.crt signs server.crt (127.0.0.1
    and localhost) and client.crt; other-ca.crt signs nothing used here."""
    if shutil.which("openssl") is None:
        skip("the openssl command is missing (scripts/deps.sh installs it)")
    mutirao_test.make_certs(TMP, extra=True)


def secret_file(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


Worker = fleet_worker.Worker


def run_lua(src, env, timeout=90):
    rc, out, err, _ = T.run_lua(src, timeout=timeout, base=env)
    return rc, out, err


def base_env():
    e = mutirao_test.env_without_mutirao(keep_test=True)
    e.update({"MUTIRAO_LOG_LEVEL": "info", "MUTIRAO_WORKER_GROUP": "mutirao.workers.tls" + UNIQ,
              # the retried task leaves a flag file (the sandbox denies writes by default)
              "MUTIRAO_WORKER_ALLOW": "io.open.write"})
    return e


def fleet_path(pool, env):
    """Submit, run, result, await, a WaitGroup, a retried task (the worker
    produces its next attempt) and the statistics through the configured
    services, with a worker of env."""
    w = Worker(pool, [pool], env)
    w.wait_for(r"starting", 60)
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s", {workers = 4, retries = 1,
                                  backoff = {initial = 50, max = 100, jitter = 0}}))
local wg = g.wait_group()
local ids = {}
for i = 1, 20 do
  wg:add(1)
  ids[i] = assert(g.pool_submit("%(pool)s", function(k) wg:done() return k * k, "sq" end, i))
end
wg:wait()
for i = 1, 20 do
  local ok, v, tag = g.await(ids[i])
  assert(ok and v == i * i and tag == "sq", tostring(v))
end
local ok, err = g.await(g.pool_submit("%(pool)s", function() error("boom") end))
assert(not ok and err:find("boom"), tostring(err))
local flaky = assert(g.pool_submit("%(pool)s", function(path)
  local f = io.open(path)
  if not f then
    assert(io.open(path, "w")):close()
    error("first attempt fails")
  end
  f:close()
  return "second attempt"
end, "%(marker)s"))
local ok2, v2 = g.await(flaky)
assert(ok2 and v2 == "second attempt", tostring(v2))
g.pool_wait("%(pool)s")
local s = assert(g.pool_stats("%(pool)s"))
print(string.format("stats completed=%%d failed=%%d", s.completed, s.failed))
""" % {"pool": pool, "marker": os.path.join(TMP, pool + ".attempt")}
    rc, out, err = run_lua(src, env)
    check(rc == 0, "producer: %d\n%s%s" % (rc, out, err))
    check("stats completed=21 failed=1" in out, "statistics:\n" + out)
    check(w.stop() == 0, "worker exit status")
    return w


def failing(env, pool, wants, secret, endpoint, logged=()):
    """pool_create fails, saying why (every text of wants) and naming the
    server, never showing the secret; the texts of logged are in its log."""
    src = """
local g = require("goroutine")
local ok, a, b = pcall(g.pool_create, "%s", {workers = 1})
print("pool_create:", ok, a, b)
os.exit(ok and a and 0 or 3)
""" % pool
    rc, out, err = run_lua(src, env, timeout=60)
    text = out + err
    check(rc != 0, "pool_create should have failed:\n" + text)
    line = ([ln for ln in out.splitlines() if ln.startswith("pool_create:")] or [""])[0]
    for want in wants:
        check(want in line, "%r not in the failure:\n%s" % (want, text))
    check(endpoint in line, "the server %s is not named:\n%s" % (endpoint, text))
    for want in logged:
        check(want in text, "%r not logged:\n%s" % (want, text))
    check(secret not in text, "the password is shown:\n" + text)
    print("fails clearly:", line)


# ---------------------------------------------------------------------------


def case_redis():
    brokers = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    if not brokers:
        skip("MUTIRAO_TEST_KAFKA_BROKERS not set (tests/services.sh start)")
    server = shutil.which("redis-server")
    if server is None:
        skip("redis-server is missing (scripts/deps.sh installs it)")
    make_certs()
    port = free_port()
    log = os.path.join(TMP, "redis.log")
    p = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
         "--user", "default", "off",
         "--user", "fleet", "on", ">fleet-S3cret", "~*", "&*", "+@all",
         "--save", "", "--appendonly", "no", "--dir", TMP, "--logfile", log],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=TMP)
    PROCS.append((p, "redis-server"))
    end = time.time() + 20
    while not tcp_open(port):
        check(p.poll() is None and time.time() < end,
              "redis-server --tls-port did not start (built without TLS?):\n" +
              (open(log).read() if os.path.exists(log) else ""))
        time.sleep(0.05)
    endpoint = "127.0.0.1:%d" % port
    env = base_env()
    env.update({"MUTIRAO_KAFKA_BROKERS": brokers,
                "MUTIRAO_REDIS_URL": "rediss://fleet@%s/0" % endpoint,
                "MUTIRAO_REDIS_TLS_CA_FILE": os.path.join(TMP, "ca.crt"),
                "MUTIRAO_REDIS_PASSWORD_FILE": secret_file("redis.pw", "fleet-S3cret")})
    fleet_path("tlsr" + UNIQ, env)
    print("the fleet path works over rediss:// with an ACL user and a password file")
    r = subprocess.run([os.path.join(BIN, "mutirao"), "dlq", "list", "tlsr" + UNIQ],
                       capture_output=True, text=True, env=env, cwd=TMP, timeout=60)
    check(r.returncode == 0 and "no dead letters" in r.stdout,
          "mutirao dlq over rediss://: %d\n%s%s" % (r.returncode, r.stdout, r.stderr))

    quick = {"MUTIRAO_OP_TIMEOUT_MS": "1500", "MUTIRAO_CONNECT_TIMEOUT_MS": "1000"}
    bad = dict(env, **quick)
    bad["MUTIRAO_REDIS_PASSWORD_FILE"] = secret_file("wrong.pw", "Wr0ng-secret")
    failing(bad, "tlsr" + UNIQ, ["AUTH failed: WRONGPASS"], "Wr0ng-secret", endpoint)
    bad = dict(env, **quick)
    bad["MUTIRAO_REDIS_TLS_CA_FILE"] = os.path.join(TMP, "other-ca.crt")
    failing(bad, "tlsr" + UNIQ, ["TLS handshake failed: certificate verify failed"],
            "fleet-S3cret", endpoint)
    bad = dict(env, **quick)
    bad["MUTIRAO_REDIS_URL"] = "redis://fleet@%s/0" % endpoint  # no TLS: refused
    del bad["MUTIRAO_REDIS_TLS_CA_FILE"]
    failing(bad, "tlsr" + UNIQ, ["redis"], "fleet-S3cret", endpoint)
    # a worker with an untrusted CA says why it takes no task
    bad = dict(env)
    bad["MUTIRAO_REDIS_TLS_CA_FILE"] = os.path.join(TMP, "other-ca.crt")
    w = Worker("untrusted", ["tlsr" + UNIQ], bad)
    w.wait_for(r"certificate verify failed", 30)
    check("fleet-S3cret" not in w.text(), "the worker logged the password")
    w.stop()


def kafka_lib():
    cache = os.environ.get("MUTIRAO_CACHE") or os.path.join(
        os.environ.get("HOME") or "/tmp", ".cache", "mutirao")
    with open(os.path.join(ROOT, "tests", "services.sh")) as f:
        version = re.search(r'KAFKA_VERSION="([^"]+)"', f.read()).group(1)
    lib = os.path.join(cache, "kafka-" + version)
    if not os.path.exists(os.path.join(lib, ".complete")):
        skip("the Kafka %s jars are not in %s (tests/services.sh start fetches them)" %
             (version, lib))
    java = os.environ.get("MUTIRAO_JAVA", "java")
    if shutil.which(java) is None:
        skip("java is missing (scripts/deps.sh installs it)")
    return java, lib


def rdkafka_version():
    """librdkafka's version as a tuple (pkg-config), (0,) if unknown."""
    try:
        v = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True,
                           text=True).stdout.strip()
        return tuple(int(x) for x in v.split(".")[:3])
    except (OSError, ValueError):
        return (0,)


def private_redis():
    """A plain redis-server of this test (the workers' retries poller would
    otherwise meet other runs' entries in the shared one)."""
    if not private_redis_server.available():
        skip("redis-server is missing (scripts/deps.sh installs it)")
    red = private_redis_server.PrivateRedis(TMP, aof=False)
    try:
        red.start()
    finally:
        if red.p is not None:
            PROCS.append((red.p, "redis-server"))
    return red.url


def case_kafka():
    java, lib = kafka_lib()
    redis = private_redis()
    make_certs()
    port, inner, cport, sport = free_port(), free_port(), free_port(), free_port()
    data = os.path.join(TMP, "kafka-data")
    props = os.path.join(TMP, "server.properties")
    with open(props, "w") as f:
        f.write("""node.id=1
process.roles=broker,controller
controller.quorum.voters=1@127.0.0.1:%(cport)d
controller.listener.names=CONTROLLER
listeners=SASL_SSL://127.0.0.1:%(port)d,SSL://127.0.0.1:%(sport)d,INTERNAL://127.0.0.1:%(inner)d,CONTROLLER://127.0.0.1:%(cport)d
advertised.listeners=SASL_SSL://127.0.0.1:%(port)d,SSL://127.0.0.1:%(sport)d,INTERNAL://127.0.0.1:%(inner)d
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
listener.name.ssl.ssl.client.auth=required
ssl.truststore.type=PEM
ssl.truststore.location=%(tmp)s/ca.crt
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_fleet="fleet-S3cret";
ssl.keystore.type=PEM
ssl.keystore.location=%(tmp)s/server-keystore.pem
log.dirs=%(data)s
num.partitions=8
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
""" % {"port": port, "inner": inner, "cport": cport, "sport": sport, "tmp": TMP, "data": data})
    cp = os.path.join(lib, "*")
    log = os.path.join(TMP, "kafka.log")
    r = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                       capture_output=True, text=True)
    cluster = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    check(re.match(r"^[A-Za-z0-9_-]{22}$", cluster), "random-uuid: %s%s" % (r.stdout, r.stderr))
    r = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster,
                        "-c", props, "--add-scram",
                        "SCRAM-SHA-512=[name=fleet,password=fleet-S3cret]"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "kafka storage format: %s%s" % (r.stdout, r.stderr))
    with open(log, "w") as lf:
        p = subprocess.Popen([java, "-Xmx512m", "-Xms64m", "-XX:+UseSerialGC",
                              "-Djava.awt.headless=true", "-cp", cp, "kafka.Kafka", props],
                             stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, cwd=TMP)
    PROCS.append((p, "kafka"))
    end = time.time() + 120
    while True:
        text = open(log, errors="replace").read()
        if re.search(r"Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)", text) \
                and tcp_open(port):
            break
        check(p.poll() is None and time.time() < end,
              "kafka with a SASL_SSL listener did not start:\n" + text[-3000:])
        time.sleep(0.2)
    endpoint = "127.0.0.1:%d" % port
    env = base_env()
    env.update({"MUTIRAO_REDIS_URL": redis, "MUTIRAO_KAFKA_BROKERS": endpoint,
                "MUTIRAO_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                "MUTIRAO_KAFKA_SASL_MECHANISM": "PLAIN",
                "MUTIRAO_KAFKA_SASL_USERNAME": "fleet",
                "MUTIRAO_KAFKA_SASL_PASSWORD_FILE": secret_file("kafka.pw", "fleet-S3cret"),
                "MUTIRAO_KAFKA_SSL_CA_FILE": os.path.join(TMP, "ca.crt")})
    fleet_path("tlsk" + UNIQ, env)
    print("the fleet path works over SASL_SSL (PLAIN) with a password file")

    # the password in the environment, kafka.property settings from a file
    conf = os.path.join(TMP, "props.conf")
    with open(conf, "w") as f:
        f.write("kafka.property.ssl.endpoint.identification.algorithm = https\n"
                "kafka.property.client.id = mutirao-tls-test\n")
    props = dict(env, MUTIRAO_CONFIG=conf, MUTIRAO_KAFKA_SASL_PASSWORD="fleet-S3cret")
    del props["MUTIRAO_KAFKA_SASL_PASSWORD_FILE"]
    fleet_path("tlsp" + UNIQ, props)
    print("the fleet path works with the password in MUTIRAO_KAFKA_SASL_PASSWORD and "
          "kafka.property settings")

    # TLS with a client certificate (the SSL listener requires one)
    mtls = base_env()
    mtls.update({"MUTIRAO_REDIS_URL": redis, "MUTIRAO_KAFKA_BROKERS": "127.0.0.1:%d" % sport,
                 "MUTIRAO_KAFKA_SECURITY_PROTOCOL": "ssl",
                 "MUTIRAO_KAFKA_SSL_CA_FILE": os.path.join(TMP, "ca.crt"),
                 "MUTIRAO_KAFKA_SSL_CERT_FILE": os.path.join(TMP, "client.crt"),
                 "MUTIRAO_KAFKA_SSL_KEY_FILE": os.path.join(TMP, "client.key")})
    fleet_path("tlsm" + UNIQ, mtls)
    print("the fleet path works over SSL with a client certificate")

    if rdkafka_version() >= (2, 6, 1):
        scram = dict(env, MUTIRAO_KAFKA_SASL_MECHANISM="SCRAM-SHA-512")
        fleet_path("tlss" + UNIQ, scram)
        print("the fleet path works over SASL_SSL (SCRAM-SHA-512)")
    else:
        print("SCRAM-SHA-512 left out: librdkafka %s cannot authenticate to Kafka 4 with "
              "SCRAM (2.6.1 or newer can)" % ".".join(map(str, rdkafka_version())))
        # but the failure says so
        scram = dict(env, MUTIRAO_KAFKA_SASL_MECHANISM="SCRAM-SHA-512", MUTIRAO_OP_TIMEOUT_MS="4000")
        failing(scram, "tlsk" + UNIQ, ["invalid credentials with SASL mechanism SCRAM-SHA-512"],
                "fleet-S3cret", endpoint, logged=["cannot do SCRAM with Kafka 4 brokers"])

    quick = {"MUTIRAO_OP_TIMEOUT_MS": "4000"}
    bad = dict(env, **quick)
    bad["MUTIRAO_KAFKA_SASL_PASSWORD_FILE"] = secret_file("wrong.pw", "Wr0ng-secret")
    failing(bad, "tlsk" + UNIQ, ["Authentication failed"], "Wr0ng-secret", endpoint)
    bad = dict(env, **quick)
    bad["MUTIRAO_KAFKA_SSL_CA_FILE"] = os.path.join(TMP, "other-ca.crt")
    failing(bad, "tlsk" + UNIQ, ["certificate verify failed"], "fleet-S3cret", endpoint)


CASES = {"redis": case_redis, "kafka": case_kafka}
passed = False
try:
    CASES[CASE]()
    passed = True
finally:
    T.kill_workers()
    for p, name in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if passed or T.skipped or os.environ.get("CI"):
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("(logs kept in %s)" % TMP)
print("ok:", CASE)
