#!/usr/bin/env python3
"""Schema changes on a table with a million rows, with writes running alongside.

Starts the platform on its own database, seeds 1,000,000 customers into one tenant,
runs pgbench writers (an INSERT and an indexed SELECT per transaction, 4 clients) for
the whole run, and meanwhile makes three changes through the Metadata API:

  1. add a nullable field                       (ALTER TABLE ... ADD COLUMN)
  2. add an indexed field                       (ADD COLUMN, then CREATE INDEX CONCURRENTLY)
  3. change a field's type (integer -> decimal) (ALTER COLUMN ... TYPE: a table rewrite)

For each change it prints how long the API call took and the worst latency the writers
saw while it ran: the time a write was held up by the change's locks.

Usage: python3 deploy/bench/schema_change.py   (needs target/release/platform, pgbench)
Cleans up its server and database at the end.
"""
import glob, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DB = "platform_schema_bench"
PORT = 3097
TENANT = "22222222-2222-4222-8222-222222222222"
SECRET = "schema-bench"
ROWS = int(os.environ.get("ROWS", "1000000"))
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]


def psql(sql, db="postgres"):
    subprocess.run(PG + ["-d", db, "-c", sql], check=True)


def api(method, path, token, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            status, out = r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        status, out = e.code, json.loads(e.read() or b"null")
    return status, out, time.monotonic() - t0


def main():
    binary = os.path.join(ROOT, "target", "release", "platform")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--bin", "platform"], cwd=ROOT, check=True)
    psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    env = dict(os.environ, DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}", JWT_SECRET=SECRET, RUST_LOG="warn")
    server = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{PORT}", "--metadata", os.path.join(ROOT, "metadata")], env=env)
    logdir = tempfile.mkdtemp(prefix="schema-bench-")
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=1)
                break
            except Exception:
                time.sleep(0.2)
        token = subprocess.run([binary, "token", "--tenant", TENANT, "--user", "bench", "--roles", "admin"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        t0 = time.monotonic()
        psql(f"""INSERT INTO registry.customer (id, tenant_id, created_by, updated_by, kind, name, status, currency, payment_terms_days)
                 SELECT gen_random_uuid(), '{TENANT}', 'seed', 'seed', 'company', 'Customer ' || g, 'active', 'EUR', 30
                 FROM generate_series(1, {ROWS}) g; ANALYZE registry.customer;""", DB)
        print(f"seeded {ROWS} rows in {time.monotonic() - t0:.1f} s")
        script = os.path.join(logdir, "write.sql")
        with open(script, "w") as f:
            f.write(f"""\\set n random(1, {ROWS})
INSERT INTO registry.customer (id, tenant_id, created_by, updated_by, kind, name, status, currency, payment_terms_days)
  VALUES (gen_random_uuid(), '{TENANT}', 'pgbench', 'pgbench', 'company', 'W ' || :n, 'active', 'EUR', 30);
SELECT name FROM registry.customer WHERE tenant_id = '{TENANT}' AND name = 'Customer ' || :n;
""")
        duration = 75
        bench = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", "4", "-j", "2", "-T", str(duration),
                                  "-M", "prepared", "-f", script, "-l", "--log-prefix", os.path.join(logdir, "tx"), DB],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        changes = [
            (10, "add a nullable field", "POST", "/api/v1/metadata/objects/customer/fields", {"name": "loyalty_points", "type": "integer"}),
            (25, "add an indexed field", "POST", "/api/v1/metadata/objects/customer/fields", {"name": "segment_code", "type": "text", "indexed": True}),
            (45, "change a type (integer -> decimal)", "PATCH", "/api/v1/metadata/objects/customer/fields/payment_terms_days", {"type": "decimal", "scale": 1}),
        ]
        start = time.time()
        windows = []
        for at, what, method, path, body in changes:
            time.sleep(max(0, start + at - time.time()))
            w0 = time.time()
            status, out, took = api(method, path, token, body)
            windows.append((what, w0, time.time(), status, took, out))
        print(bench.communicate()[0].strip().splitlines()[-1])
        lat = []  # (completion epoch seconds, latency ms)
        for path in glob.glob(os.path.join(logdir, "tx*")):
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 6:
                        lat.append((int(p[4]) + int(p[5]) / 1e6, int(p[2]) / 1000.0))
        lat.sort()
        base = sorted(l for t, l in lat if start + 1 < t < start + 9)
        p99 = base[int(len(base) * 0.99)] if base else float("nan")
        print(f"\nwriters: {len(lat)} transactions, p99 before any change {p99:.1f} ms\n")
        print("| change | API status | API time (s) | worst write latency during it (ms) | writes completed during it |")
        print("|---|---|---|---|---|")
        for what, w0, w1, status, took, out in windows:
            during = [l for t, l in lat if w0 <= t <= w1 + 0.5]
            worst = max(during) if during else float("nan")
            print(f"| {what} | {status} | {took:.3f} | {worst:.1f} | {len(during)} |")
            if status >= 300:
                print("   ", json.dumps(out)[:300])
    finally:
        server.terminate()
        server.wait(timeout=30)
        psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
