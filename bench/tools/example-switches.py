#!/usr/bin/env python3
"""README's example at a low webhook rate: what one webhook costs the hub.

Runs BINDIR/switchyard on README's example without its generator (webhook-json
-> sentiment -> store on a fresh SQLite file -> jsonl-output, the plugins taken
from BINDIR too), posts COUNT webhooks with distinct order ids at RATE per
second over one keep-alive connection, and prints the hub's context switches
(voluntary and involuntary, summed over its threads, from /proc/PID/task/*) and
CPU time (utime + stime) per webhook, from the first webhook until 1 s after
jsonl-output wrote the last line. With PER_THREAD=1 it also prints them by
thread name. docs/benchmarks.md quotes its figures; it asserts nothing.

    bench/tools/example-switches.py target/dist 250 50

Set SWITCHYARD_LOG (for example info,sqlx=debug, every statement) to keep the
hub's log in the temporary directory it prints.
"""
import http.client, json, os, socket, subprocess, sys, tempfile, time
if len(sys.argv) != 4:
    sys.exit(__doc__)
bindir, n, rate = os.path.abspath(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
tmp = tempfile.mkdtemp(prefix="example-switches-")
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
port = free_port()
cfg = f'''
[hub]
listen = "127.0.0.1:{port}"
database = "sqlite://{tmp}/ex.db"
[plugins.webhooks]
command = "{bindir}/webhook-json"
[plugins.webhooks.config]
id_field = "id"
type_field = "type"
[plugins.webhooks.webhook]
auth = "none"
[plugins.sentiment]
command = "{bindir}/sentiment"
[plugins.sentiment.config]
text_fields = ["text", "filler"]
[plugins.archive]
command = "{bindir}/jsonl-output"
[plugins.archive.config]
path = "{tmp}/events.jsonl"
[plugins.archive.output]
events = ["created", "updated"]
[pipeline]
enrich = ["sentiment"]
on_error = "skip"
'''
open(f"{tmp}/plugins.toml", "w").write(cfg)
hub = subprocess.Popen([f"{bindir}/switchyard", "run", "--config", f"{tmp}/plugins.toml"],
                       stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/hub.log", "w"))
def ready():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1); c.request("GET", "/readyz")
        return c.getresponse().status == 200
    except Exception:
        return False
deadline = time.time() + 30
while not ready():
    if time.time() > deadline or hub.poll() is not None:
        sys.exit(f"the hub did not become ready; see {tmp}/hub.log")
    time.sleep(0.05)
time.sleep(1.0)
def task_switches(task):
    """Voluntary and involuntary context switches of one of the hub's threads."""
    return sum(int(line.split()[1]) for line in open(f"/proc/{hub.pid}/task/{task}/status")
               if "ctxt_switches" in line)
def per_thread():
    out = {}
    for t in os.listdir(f"/proc/{hub.pid}/task"):
        try:
            name = open(f"/proc/{hub.pid}/task/{t}/comm").read().strip()
            f = open(f"/proc/{hub.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
            out[t] = (name, task_switches(t), int(f[11]) + int(f[12]))
        except FileNotFoundError:
            pass
    return out
def sample():
    sw = 0
    for t in os.listdir(f"/proc/{hub.pid}/task"):
        try:
            sw += task_switches(t)
        except FileNotFoundError:
            pass
    f = open(f"/proc/{hub.pid}/stat").read().rsplit(")", 1)[1].split()
    return sw, int(f[11]) + int(f[12])
conn = http.client.HTTPConnection("127.0.0.1", port)
t0 = per_thread()
s0 = sample(); start = time.time()
for i in range(n):
    target = start + i / rate
    d = target - time.time()
    if d > 0: time.sleep(d)
    body = json.dumps({"id": f"order-{i}", "type": "order.created", "text": "great product, fast delivery, thank you"})
    conn.request("POST", "/webhooks/webhooks", body, {"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 202, r.status
path = f"{tmp}/events.jsonl"
deadline = time.time() + 30
while True:
    try: lines = sum(1 for _ in open(path))
    except FileNotFoundError: lines = 0
    if lines >= n: break
    if time.time() > deadline: sys.exit(f"only {lines} lines")
    time.sleep(0.01)
time.sleep(1.0)
s1 = sample()
t1 = per_thread()
if os.environ.get("PER_THREAD"):
    agg = {}
    for t, (name, sw, cpu) in t1.items():
        b = t0.get(t, (name, 0, 0))
        a = agg.setdefault(name, [0, 0, 0]); a[0] += 1; a[1] += sw - b[1]; a[2] += cpu - b[2]
    for name, (k, sw, cpu) in sorted(agg.items(), key=lambda x: -x[1][1]):
        print(f"  {name:20} threads {k:3} switches/webhook {sw/n:6.1f} cpu ticks {cpu}")
tick = os.sysconf("SC_CLK_TCK")
print(f"switches/webhook {(s1[0]-s0[0])/n:.1f}  cpu/webhook {(s1[1]-s0[1])/tick/n*1e6:.0f} us")
hub.send_signal(2); hub.wait(timeout=20)
print(f"hub log: {tmp}/hub.log")
