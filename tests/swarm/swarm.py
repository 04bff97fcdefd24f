#!/usr/bin/env python3
"""The firmchain fleet in Docker: anvil, one repository and N devices as containers on an --internal network.

Run by tests/swarm/run.sh (which provides the engine and the images). Every scenario asserts on what the
devices report in /status (read with `docker exec DEVICE /firmchain node status`); a failed assertion stops the
run with the devices' logs saved under the work folder. Writes a results file (convergence time and repository
upload / payload for N = 5, 10, 20).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

NET = "firmchain-swarm"
SUBNET = "10.77.0.0/24"
# The peers scenario's device network: only the repository is on both; it has no route to anvil or the beacon.
DEV_NET = "firmchain-swarm-devices"
DEV_SUBNET = "10.78.0.0/24"
BEACON_IP = "10.77.0.3"
ANVIL_IP = "10.77.0.2"
REPO_IP = "10.77.0.10"
PRODUCT = "swarm-sensor"
LABEL = "firmchain-swarm=1"
# anvil's first default account (a well-known development key, funded only on the dev chain).
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
RPC = f"http://{ANVIL_IP}:8545"
# The image's USER (Dockerfile): a node's bind-mounted data folder must belong to it.
NODE_UID = 10001
# anvil's second default account: the guardian of the rollout scenario.
GUARDIAN_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
GUARDIAN = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def log(msg):
    print(f"[swarm] {msg}", file=sys.stderr, flush=True)


def node_dir(path):
    """A host folder to mount as a node's /data: the node runs as NODE_UID, not root."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, NODE_UID, NODE_UID)
    else:
        os.chmod(path, 0o777)
    return path


def docker(*args, check=True, timeout=120):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def wait(what, timeout, probe, every=0.2):
    """Call probe() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            last = e
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def sample(size, seed):
    """Deterministic pseudo-random bytes (xorshift)."""
    out = bytearray(size)
    x = ((seed + 1) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF) | 1
    for i in range(0, size, 8):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out[i:i + 8] = x.to_bytes(8, "little")[: min(8, size - i)]
    return bytes(out)


def next_release(old, n, new_kib):
    """A release: 4 KiB edited in place, `new_kib` KiB of new data inserted, a version string appended."""
    new = bytearray(old)
    at = (len(old) // 7) * (n % 6 + 1)
    new[at:at + 4096] = sample(4096, 1000 + n)
    new[len(new) // 2:len(new) // 2] = sample(new_kib * 1024, 2000 + n)
    return bytes(new) + f"release {n}".encode()


class Fleet:
    def __init__(self, work, image, anvil_image):
        self.work = work
        self.image = image
        self.anvil_image = anvil_image
        self.devices = []  # names
        self.repo_addr = None
        self.contract = None
        self.releases = {}  # seq -> bytes
        self.targets = {}  # seq -> blake3 (hex)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def run(self, name, ip, args, env=(), volumes=(), image=None, network=NET, options=()):
        cmd = ["run", "-d", "--name", name, "--label", LABEL, "--network", network, "--ip", ip, *options]
        for k, v in env:
            cmd += ["-e", f"{k}={v}"]
        for host, inside in volumes:
            cmd += ["-v", f"{host}:{inside}"]
        docker(*cmd, image or self.image, *args)

    def start_chain(self, anvil_args=()):
        docker("network", "create", "--internal", "--subnet", SUBNET, "--label", LABEL, NET)
        self.run("fc-anvil", ANVIL_IP, ["--host", "0.0.0.0", "--port", "8545", "--accounts", "2", *anvil_args],
                 image=self.anvil_image)
        def deploy():
            out = docker("run", "--rm", "--label", LABEL, "--network", NET, "-e", f"FIRMCHAIN_PRIVATE_KEY={KEY}",
                         self.image, "--json", "contract", "deploy", "--rpc", RPC, check=False)
            return json.loads(out)["contract"] if out.strip() else None
        self.contract = wait("anvil answers and the FirmwareIndex is deployed", 60, deploy, every=0.5)
        docker("run", "--rm", "--label", LABEL, "--network", NET, "-e", f"FIRMCHAIN_PRIVATE_KEY={KEY}",
               self.image, "--json", "contract", "add-publisher", ACCOUNT, "--rpc", RPC,
               "--contract", self.contract)
        log(f"anvil at {ANVIL_IP}, FirmwareIndex {self.contract}")

    def node_args(self, data, extra=()):
        args = ["--json", "run", "--data", data]
        for s in [
            "chain.mode=rpc", f"chain.execution_rpc={RPC}", f"chain.contract={self.contract}",
            f"chain.product={PRODUCT}", "chain.poll_interval_secs=1", "p2p.listen=/ip4/0.0.0.0/tcp/4001",
            "p2p.stall_timeout_secs=30", "api.listen=127.0.0.1:8420", *extra,
        ]:
            args += ["--set", s]
        return args

    def first_line(self, name, timeout=60):
        def line():
            out = docker("logs", name, check=False)
            for l in out.splitlines():
                if l.startswith("{"):
                    return json.loads(l)
            return None
        return wait(f"{name} started", timeout, line)

    def start_repo(self):
        host = node_dir(os.path.join(self.work, "repo"))
        self.run("fc-repo", REPO_IP, self.node_args("/data") + ["--repository"], env=[("FIRMCHAIN_PRIVATE_KEY", KEY), ("FIRMCHAIN_LOG", "info,libp2p_kad=error")],
                 volumes=[(host, "/data")])
        started = self.first_line("fc-repo")
        self.repo_addr = f"/ip4/{REPO_IP}/tcp/4001/p2p/{started['peer_id']}"
        return started["peer_id"]

    def device_ip(self, i):
        return f"10.77.0.{100 + i}"

    def start_device(self, i, env=(), settings=()):
        name = f"fc-dev{i}"
        host = node_dir(os.path.join(self.work, name))
        extra = [f"p2p.bootstrap={self.repo_addr}", "install.initial_image=/factory.bin", *settings]
        self.run(name, self.device_ip(i), self.node_args("/data", extra),
                 env=[("FIRMCHAIN_LOG", "info,libp2p_kad=error"), *env],
                 volumes=[(host, "/data"), (os.path.join(self.work, "factory.bin"), "/factory.bin:ro")])
        started = self.first_line(name)
        if name not in self.devices:
            self.devices.append(name)
        return started["peer_id"]

    def remove(self, name):
        docker("rm", "-f", name, check=False)

    # -- API -----------------------------------------------------------------------------------------------
    def status(self, name):
        return json.loads(docker("exec", name, "/firmchain", "--json", "node", "status", timeout=30))

    def publish(self, seq, image, terms=()):
        path = os.path.join(self.work, "repo", f"v{seq}.bin")
        with open(path, "wb") as f:
            f.write(image)
        self.releases[seq] = image
        before = self.status("fc-repo")["uploaded_bytes"]
        out = docker("exec", "fc-repo", "/firmchain", "--json", "publish", "--api", "http://127.0.0.1:8420",
                     "--product", PRODUCT, "--to", f"/data/v{seq}.bin", *terms, timeout=300)
        # The publish returns once its receipt is seen (polled every 250 ms): inclusion, to within that.
        included_ms = int(time.time() * 1000)
        r = json.loads(out)
        assert r["sequence"] == seq, r
        self.targets[seq] = r["target_hash"]
        name = "patch" if r["kind"] == "patch" else "full"
        payload = next(e["size"] for e in r["entries"] if e["name"] == name)
        log(f"release {seq} published in block {r['block']}: {r['kind']}, {payload} bytes")
        return {"included_ms": included_ms, "payload": payload, "uploaded_before": before, "kind": r["kind"],
                "target": r["target_hash"]}

    def index(self, *args, key=KEY):
        """`firmchain contract ARGS` signed by `key`, from a throw-away container on the fleet's network."""
        out = docker("run", "--rm", "--label", LABEL, "--network", NET, "-e", f"FIRMCHAIN_PRIVATE_KEY={key}",
                     self.image, "--json", "contract", *args, "--rpc", RPC, "--contract", self.contract,
                     timeout=120)
        return json.loads(out)

    def anvil_rpc(self, method, params):
        """One JSON-RPC call to anvil from inside its network namespace (the fleet's network is internal)."""
        pid = docker("inspect", "-f", "{{.State.Pid}}", "fc-anvil").strip()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        code = ("import sys, urllib.request; r = urllib.request.Request('http://127.0.0.1:8545', "
                "data=sys.argv[1].encode(), headers={'Content-Type': 'application/json'}); "
                "print(urllib.request.urlopen(r, timeout=30).read().decode())")
        r = subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", code, body], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"anvil {method}: {r.stderr.strip()}")
        out = json.loads(r.stdout)
        if "error" in out:
            raise RuntimeError(f"anvil {method}: {out['error']}")
        return out["result"]

    def advance(self, secs):
        """Move anvil's clock forward and mine a block at the new time; returns the new chain time."""
        self.anvil_rpc("evm_increaseTime", [secs])
        self.anvil_rpc("evm_mine", [])
        return self.chain_time()

    def chain_time(self):
        return int(self.anvil_rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def wait_installed(self, names, seq, timeout=120):
        target = self.releases[seq]
        done = {}
        def all_done():
            for n in names:
                if n in done:
                    continue
                s = self.status(n)
                if s["installed"] and s["installed"]["sequence"] == seq:
                    done[n] = s
            return len(done) == len(names)
        wait(f"release {seq} on {len(names)} devices", timeout, all_done, every=0.3)
        return done

    def converge(self, names, seq, published, timeout=120):
        done = self.wait_installed(names, seq, timeout)
        last = max(s["last_install"]["at_ms"] for s in done.values())
        for n, s in done.items():
            assert s["installed"]["hash"] == published["target"], f"{n} runs {s['installed']}"
        uploaded = self.status("fc-repo")["uploaded_bytes"] - published["uploaded_before"]
        return (last - published["included_ms"]) / 1000.0, uploaded / max(published["payload"], 1), done

    def save_logs(self):
        for name in ["fc-anvil", "fc-beacon", "fc-repo", *self.devices, "fc-evil"]:
            out = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            with open(os.path.join(self.work, f"{name}.log"), "w") as f:
                f.write(out.stdout + out.stderr)

    def teardown(self):
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        docker("network", "rm", NET, check=False)
        docker("network", "rm", DEV_NET, check=False)


def new_fleet(args, n, tag):
    work = os.path.join(args.work, tag)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    fleet = Fleet(work, args.image, args.anvil_image)
    fleet.teardown()
    factory = sample(args.size_mib * 1024 * 1024, 5)
    with open(os.path.join(work, "factory.bin"), "wb") as f:
        f.write(factory)
    fleet.factory = factory
    fleet.start_chain()
    fleet.start_repo()
    for i in range(1, n + 1):
        fleet.start_device(i)
    log(f"{tag}: repository and {n} devices running")
    return fleet


def measure(args, n):
    """Release 1 (full image) and release 2 (a patch) to N devices: time and repository upload / payload."""
    fleet = new_fleet(args, n, f"measure-{n}")
    try:
        rows = []
        image = fleet.factory
        for seq in (1, 2):
            image = next_release(image, seq, args.change_kib)
            p = fleet.publish(seq, image)
            t, ratio, _ = fleet.converge(fleet.devices, seq, p)
            log(f"N={n} release {seq} ({p['kind']}, {p['payload']} B): {t:.2f} s, upload {ratio:.2f}x")
            rows.append((p["kind"], p["payload"], t, ratio))
        return rows
    finally:
        fleet.save_logs()
        fleet.teardown()


def check_operator_image(fleet, device):
    """The image runs the node as NODE_UID, its data belongs to that user, and Docker's HEALTHCHECK passes."""
    user = docker("inspect", "-f", "{{.Config.User}}", device).strip()
    assert user == f"{NODE_UID}:{NODE_UID}", f"{device} runs as {user!r}"
    owner = os.stat(os.path.join(fleet.work, device, "state.redb")).st_uid
    assert owner == NODE_UID, f"{device}'s state.redb belongs to uid {owner}"
    r = subprocess.run(["docker", "exec", device, "/firmchain", "node", "health"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, f"node health in {device}: {r.returncode} {r.stderr.strip()}"
    # The first check runs one interval (30 s) after the start.
    wait(f"{device} healthy", 120,
         lambda: docker("inspect", "-f", "{{.State.Health.Status}}", device).strip() == "healthy", every=1)
    log(f"{device}: user {user}, data owned by {owner}, HEALTHCHECK healthy")


def scenarios(args):
    n = 10
    fleet = new_fleet(args, n, "scenarios")
    results = {}
    try:
        devs = list(fleet.devices)
        # 1. Ten devices converge on a release.
        image = next_release(fleet.factory, 1, args.change_kib)
        p = fleet.publish(1, image)
        t, ratio, _ = fleet.converge(devs, 1, p)
        results["1"] = f"10 devices converged in {t:.2f} s; repository upload {ratio:.2f}x the payload"
        log(f"scenario 1: {results['1']}")
        check_operator_image(fleet, devs[0])

        # 2. The repository stops right after seeding one device; the others converge from it.
        for d in devs[1:]:
            docker("pause", d)
        image = next_release(image, 2, args.change_kib)
        p = fleet.publish(2, image)
        fleet.wait_installed([devs[0]], 2)
        seeded = fleet.status("fc-repo")["uploaded_bytes"] - p["uploaded_before"]
        docker("stop", "-t", "10", "fc-repo")
        for d in devs[1:]:
            docker("unpause", d)
        done = fleet.wait_installed(devs, 2)
        repo_id = fleet.first_line("fc-repo")["peer_id"]
        for name, s in done.items():
            assert s["installed"]["hash"] == p["target"], name
            if name != devs[0]:
                peers = [x["peer"] for x in (s["last_fetch"] or {}).get("peers", [])]
                assert repo_id not in peers, f"{name} fetched from the stopped repository"
        results["2"] = (f"repository stopped after seeding one device ({seeded} bytes, payload {p['payload']}); "
                        f"the other {n - 1} converged from devices")
        log(f"scenario 2: {results['2']}")
        docker("start", "fc-repo")
        wait("the repository is back", 60, lambda: fleet.status("fc-repo"))

        # 3. A partition during a fetch: devices 6-10 are cut off, then healed.
        image = next_release(image, 3, args.change_kib)
        cut = devs[5:]
        p = fleet.publish(3, image)
        for d in cut:
            docker("network", "disconnect", "-f", NET, d)
        reachable = devs[:5]
        fleet.wait_installed(reachable, 3)
        behind = [d for d in cut if fleet.status(d)["installed"]["sequence"] != 3]
        for d in cut:
            i = int(d.removeprefix("fc-dev"))
            docker("network", "connect", "--ip", fleet.device_ip(i), NET, d)
        fleet.wait_installed(devs, 3)
        results["3"] = (f"devices 6-10 cut off right after the publish ({len(behind)} of them had not installed it "
                        f"yet); after healing all 10 run release 3")
        log(f"scenario 3: {results['3']}")

        # 4. A device killed mid-install (while the new image is written) ends on a verified image.
        victim = devs[0]
        docker("rm", "-f", victim)
        fleet.start_device(1, env=[("FIRMCHAIN_TEST_PAUSE_AT", "patching")])
        image = next_release(image, 4, args.change_kib)
        p = fleet.publish(4, image)
        wait("the victim paused while writing the image", 120,
             lambda: "paused at patching" in subprocess.run(["docker", "logs", victim], capture_output=True,
                                                            text=True).stderr)
        docker("kill", victim)
        docker("rm", "-f", victim)
        # Half a new image in the inactive slot; the pointer still names release 3.
        with open(os.path.join(fleet.work, victim, "slots", "state.json")) as f:
            pointer = json.load(f)
        assert pointer["active"]["sequence"] == 3, pointer
        fleet.start_device(1)
        fleet.wait_installed(devs, 4)
        s = fleet.status(victim)
        assert s["recovered"] is None, s["recovered"]
        assert s["installed"]["hash"] == p["target"]
        results["4"] = "killed while writing release 4: restarted on verified release 3, then installed release 4"
        log(f"scenario 4: {results['4']}")

        # 5. Slow links, shaped from the host inside each container's network namespace (the images have no
        #    tc): 50 ms delay and 5 % loss with netem where the kernel has sch_netem; otherwise an 8 Mbit/s rate
        #    limit (tbf) and 5 % random loss of incoming packets (iptables statistic), and no added delay.
        def ns(pid, *cmd):
            return subprocess.run(["nsenter", "-t", pid, "-n", *cmd], capture_output=True, text=True)
        def iface(pid):
            # eth0, or eth1 after a disconnect and reconnect: the interface on the fleet's subnet.
            for line in ns(pid, "ip", "-o", "-4", "addr", "show").stdout.splitlines():
                if " 10.77.0." in line:
                    return line.split()[1]
            raise AssertionError(f"no fleet interface in {pid}")
        pids = [(pid, iface(pid)) for pid in
                (docker("inspect", "-f", "{{.State.Pid}}", d).strip() for d in devs)]
        netem = all(ns(pid, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "50ms", "loss", "5%")
                    .returncode == 0 for pid, dev in pids)
        if netem:
            shaping = "50 ms delay, 5 % loss (netem)"
        else:
            for pid, dev in pids:
                ns(pid, "tc", "qdisc", "del", "dev", dev, "root")
                r1 = ns(pid, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "8mbit", "burst", "32kbit",
                        "latency", "400ms")
                r2 = ns(pid, "iptables", "-A", "INPUT", "-m", "statistic", "--mode", "random", "--probability",
                        "0.05", "-j", "DROP")
                assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
            shaping = ("8 Mbit/s and 5 % loss (tbf + iptables; this kernel has no sch_netem, so no added "
                       "delay)")
        image = next_release(image, 5, args.change_kib)
        p = fleet.publish(5, image)
        t, ratio, _ = fleet.converge(devs, 5, p, timeout=300)
        results["5"] = f"{shaping} on every device: converged in {t:.2f} s, upload {ratio:.2f}x the payload"
        for pid, dev in pids:
            ns(pid, "tc", "qdisc", "del", "dev", dev, "root")
            ns(pid, "iptables", "-F", "INPUT")
        log(f"scenario 5: {results['5']}")

        # 6. A malicious device serves corrupted blocks: nobody installs them, the honest devices converge.
        evil_dir = node_dir(os.path.join(fleet.work, "fc-evil"))
        fleet.run("fc-evil", "10.77.0.99", fleet.node_args("/data", [f"p2p.bootstrap={fleet.repo_addr}",
                                                                       "install.initial_image=/factory.bin"]),
                  env=[("FIRMCHAIN_TEST_FAULT", "corrupt")],
                  volumes=[(evil_dir, "/data"), (os.path.join(fleet.work, "factory.bin"), "/factory.bin:ro")])
        evil_id = fleet.first_line("fc-evil")["peer_id"]
        seq = max(fleet.releases)
        wait("the malicious device holds the release", 120,
             lambda: (fleet.status("fc-evil")["installed"] or {}).get("sequence") == seq)
        # Honest devices that fetch now meet the malicious one among their peers.
        for d in devs[5:]:
            docker("rm", "-f", d)
            i = int(d.removeprefix("fc-dev"))
            subprocess.run(["rm", "-rf", os.path.join(fleet.work, d)])
            fleet.start_device(i)
        done = fleet.wait_installed(devs, seq, timeout=180)
        refused = sum(1 for s in done.values() if any(evil_id in r for r in s["rejected"]))
        assert refused > 0, "no device met the malicious one: the scenario tested nothing"
        for name, s in done.items():
            assert s["installed"]["hash"] == fleet.targets[seq], f"{name} runs {s['installed']}"
        results["6"] = (f"a device serving corrupted blocks: {refused} of the 5 fresh devices caught and dropped it, "
                        f"all 10 run release {seq} with the right hash")
        log(f"scenario 6: {results['6']}")
        return results
    finally:
        fleet.save_logs()
        fleet.teardown()


def held(status, seq):
    """The reason /status gives for release `seq` waiting, or None."""
    for w in status.get("waiting") or []:
        if w["sequence"] == seq:
            return w["reason"]
    return None


def rollout(args):
    """7. A staged rollout enforced by the devices from the chain: a 40 % canary, a pause and a resume, growth
    on anvil's clock, another hardware class that never fetches, and a guardian's veto inside the delay."""
    n, other = 10, 2
    fleet = new_fleet(args, 0, "rollout")
    try:
        names = [f"swarm-{i:02}" for i in range(1, n + 1)]
        classes = {name: ("board-a" if i <= n - other else "board-b") for i, name in enumerate(names, 1)}
        for i, name in enumerate(names, 1):
            fleet.start_device(i, settings=[f"device.name={name}", f"device.hardware_class={classes[name]}"])
        devs = {name: f"fc-dev{i}" for i, name in enumerate(names, 1)}
        a = [x for x in names if classes[x] == "board-a"]
        b = [x for x in names if classes[x] == "board-b"]

        def wait_held(name, seq, reason, t):
            def ok():
                s = fleet.status(devs[name])
                return (s.get("chain") or {}).get("timestamp", 0) >= t and held(s, seq) == reason and s
            s = wait(f"{name} holds release {seq} ({reason}) at chain time {t}", 120, ok, every=0.5)
            assert s["installed"]["sequence"] == seq - 1, f"{name} runs {s['installed']}"

        image = next_release(fleet.factory, 1, args.change_kib)
        p = fleet.publish(1, image, ["--hardware", "board-a", "--rollout", "40%,+30%/1h"])
        status = fleet.index("rollout-status", "--product", PRODUCT, "--sequence", "1",
                                "--device", ",".join(a), "--hardware", "board-a")
        needs = {d["name"]: d["needs_bps"] for d in status["devices"]}
        # The step at which each board-a device is inside the share: 40 %, 70 %, 100 %.
        wave = {x: 1 if needs[x] <= 4000 else 2 if needs[x] <= 7000 else 3 for x in a}
        first = [x for x in a if wave[x] == 1]
        assert 0 < len(first) < len(a), f"the draw puts {len(first)} of {len(a)} devices in the canary: {status}"
        assert sorted(x["name"] for x in status["devices"] if x["eligible"]) == sorted(first), status
        t0 = fleet.chain_time()
        fleet.wait_installed([devs[x] for x in first], 1)
        for x in a:
            if wave[x] > 1:
                wait_held(x, 1, "rollout", t0)
        for x in b:
            wait_held(x, 1, "other_hardware", t0)
        log(f"scenario 7: 40 %: {len(first)} of {len(a)} board-a devices installed, as predicted: {first}")

        # A pause by the owner, then an hour of chain time: the second wave must wait; the resume lets it in.
        fleet.index("pause", "--product", PRODUCT)
        t1 = fleet.advance(3600)
        for x in a:
            if wave[x] > 1:
                wait_held(x, 1, "paused", t1)
        fleet.index("resume", "--product", PRODUCT)
        second = [x for x in a if wave[x] <= 2]
        fleet.wait_installed([devs[x] for x in second], 1)
        t2 = fleet.chain_time()
        for x in a:
            if wave[x] > 2:
                wait_held(x, 1, "rollout", t2)
        # Two more hours: the whole class; the other class never fetched a byte.
        fleet.advance(7200)
        fleet.wait_installed([devs[x] for x in a], 1)
        for x in b:
            s = fleet.status(devs[x])
            assert held(s, 1) == "other_hardware" and s["last_fetch"] is None and s["installed"]["sequence"] == 0, s

        # A veto: a 10-minute activation delay and a guardian, who cancels release 2 inside its window.
        fleet.index("guardian", "add", GUARDIAN, "--product", PRODUCT)
        fleet.index("delay", "--product", PRODUCT, "10m")
        image = next_release(image, 2, args.change_kib)
        fleet.publish(2, image, ["--hardware", "board-a"])
        t3 = fleet.chain_time()
        for x in a:
            wait_held(x, 2, "delay", t3)
        fleet.index("cancel", "--product", PRODUCT, "--sequence", "2", "--reason", "veto", key=GUARDIAN_KEY)
        t4 = fleet.advance(3600)
        for x in a:
            s = wait(f"{x} polled after the window", 120,
                     lambda: (lambda s: (s.get("chain") or {}).get("timestamp", 0) >= t4 and held(s, 2) is None
                              and s)(fleet.status(devs[x])), every=0.5)
            assert s["installed"]["sequence"] == 1, f"{x} installed a cancelled release: {s['installed']}"
        return (f"40 % canary: exactly the {len(first)} predicted of {len(a)} board-a devices installed; "
                f"a pause held the second wave through its step, the resume let {len(second)} in, two hours "
                f"later all {len(a)}; {len(b)} board-b devices never fetched; a guardian's cancel inside a 10-minute "
                f"delay kept release 2 off every device")
    finally:
        fleet.save_logs()
        fleet.teardown()


PEERS_STALENESS = 20  # chain.max_staleness_secs of the peers scenario's devices


def proof_source(fleet, name):
    """The peer id a device's last verified release proof came from (its log's `from=peer ID`), or None."""
    out = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    lines = [l for l in (out.stdout + out.stderr).splitlines() if "release seen (release proof verified)" in l]
    if not lines or "from=peer " not in lines[-1]:
        return None
    return lines[-1].split("from=peer ", 1)[1].split()[0].strip('"')


def routes(name):
    """The IPv4 routes in `name`'s network namespace."""
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).strip()
    r = subprocess.run(["nsenter", "-t", pid, "-n", "ip", "-4", "route"], capture_output=True, text=True)
    return "; ".join(l.strip() for l in r.stdout.splitlines())


def no_route(fleet, name, ip, port):
    """True when a TCP connect from `name`'s network namespace to ip:port fails (the image has no shell)."""
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).strip()
    code = ("import socket, sys\n"
            "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
            "except OSError as e:\n print(e); sys.exit(0)\n"
            "sys.exit(1)")
    r = subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", code, ip, str(port)],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0, r.stdout.strip()


def peers(args):
    """8. Updates proven over the mesh: anvil, a beacon light-client harness and the repository (light mode,
    serving chain proofs) on the chain network; 10 devices in `peers` mode with no RPC URL on a network of their
    own, which only the repository joins. The devices install, a revocation reaches them through head proofs,
    and when the beacon stops they report `stale` after chain.max_staleness_secs."""
    n = 10
    work = os.path.join(args.work, "peers")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    fleet = Fleet(work, args.image, args.anvil_image)
    fleet.teardown()
    fleet.factory = sample(args.size_mib * 1024 * 1024, 5)
    with open(os.path.join(work, "factory.bin"), "wb") as f:
        f.write(fleet.factory)
    try:
        # The chain side: anvil mines a block every second (the harness moves its head with new blocks).
        fleet.start_chain(["--block-time", "1"])
        # The image's HEALTHCHECK asks a node's API, which the harness has not.
        fleet.run("fc-beacon", BEACON_IP, ["--json", "beacon-harness", "--rpc", RPC, "--listen", "0.0.0.0:5052"],
                  options=["--no-healthcheck"])
        beacon = fleet.first_line("fc-beacon")
        chain_yaml = os.path.join(work, "chain.yaml")
        with open(chain_yaml, "w") as f:
            f.write(beacon["chain_config"])
        os.chmod(chain_yaml, 0o644)
        checkpoint = beacon["checkpoint"]
        log(f"beacon harness at {BEACON_IP}:5052, checkpoint {checkpoint}")
        chain = [f"chain.contract={fleet.contract}", f"chain.product={PRODUCT}", f"chain.checkpoint={checkpoint}",
                 "chain.chain_config=/chain.yaml", "chain.poll_interval_secs=1", "p2p.listen=/ip4/0.0.0.0/tcp/4001",
                 "p2p.stall_timeout_secs=30", "api.listen=127.0.0.1:8420"]

        def sets(items):
            return [x for item in items for x in ("--set", item)]

        repo_dir = node_dir(os.path.join(work, "repo"))
        repo_args = ["--json", "run", "--data", "/data", "--repository", *sets([
            "chain.mode=light", f"chain.execution_rpc={RPC}", f"chain.consensus_rpc=http://{BEACON_IP}:5052",
            *chain])]
        fleet.run("fc-repo", REPO_IP, repo_args, env=[("FIRMCHAIN_PRIVATE_KEY", KEY),
                                                      ("FIRMCHAIN_LOG", "info,libp2p_kad=error")],
                  volumes=[(repo_dir, "/data"), (chain_yaml, "/chain.yaml:ro")])
        repo_id = fleet.first_line("fc-repo", timeout=120)["peer_id"]
        # The devices' network: the repository is its only member with a route to the chain.
        docker("network", "create", "--internal", "--subnet", DEV_SUBNET, "--label", LABEL, DEV_NET)
        docker("network", "connect", "--ip", "10.78.0.10", DEV_NET, "fc-repo")
        repo_addr = f"/ip4/10.78.0.10/tcp/4001/p2p/{repo_id}"

        device = ["chain.mode=peers", *chain, f"chain.max_staleness_secs={PEERS_STALENESS}",
                  "install.initial_image=/factory.bin"]
        ids = {repo_id: "fc-repo"}
        first = None
        for i in range(1, n + 1):
            name = f"fc-dev{i}"
            host = node_dir(os.path.join(work, name))
            # Devices 6-10 know only device 1: whatever they verify reached them through devices.
            boot = repo_addr if i <= 5 else first
            fleet.run(name, f"10.78.0.{100 + i}", ["--json", "run", "--data", "/data",
                                                    *sets([*device, f"p2p.bootstrap={boot}"])],
                      env=[("FIRMCHAIN_LOG", "info,libp2p_kad=error")], network=DEV_NET,
                      volumes=[(host, "/data"), (os.path.join(work, "factory.bin"), "/factory.bin:ro"),
                               (chain_yaml, "/chain.yaml:ro")])
            started = fleet.first_line(name)
            assert started["chain"] == "peers", started
            ids[started["peer_id"]] = name
            if i == 1:
                first = f"/ip4/10.78.0.101/tcp/4001/p2p/{started['peer_id']}"
            fleet.devices.append(name)
        devs = list(fleet.devices)
        # No RPC URL in any device's configuration, and no route from the devices to the chain containers: an
        # --internal network still gives its containers a default route to the bridge (where Docker's rules drop
        # the traffic); it is removed, so the devices' only route is their own subnet.
        for d in devs:
            pid = docker("inspect", "-f", "{{.State.Pid}}", d).strip()
            subprocess.run(["nsenter", "-t", pid, "-n", "ip", "route", "del", "default"], capture_output=True)
            assert "default" not in routes(d), f"{d}: {routes(d)}"
            argv = " ".join(json.loads(docker("inspect", "-f", "{{json .Args}}", d)))
            assert "rpc" not in argv and ANVIL_IP not in argv and BEACON_IP not in argv, f"{d}: {argv}"
            for ip, port in ((ANVIL_IP, 8545), (BEACON_IP, 5052)):
                unreachable, why = no_route(fleet, d, ip, port)
                assert unreachable, f"{d} reaches {ip}:{port}"
        log(f"scenario 8: {n} devices in peers mode, no RPC URL; routes of {devs[0]}: {routes(devs[0])}; a connect "
            f"to anvil or the beacon fails ({why})")
        for d in devs:
            wait(f"{d} verified a head proof", 180,
                 lambda: (lambda s: (s.get("chain") or {}).get("mode") == "peers"
                          and s["chain_state"] == "verified")(fleet.status(d)), every=0.5)

        # A release reaches every device through proofs relayed over the mesh.
        image = next_release(fleet.factory, 1, args.change_kib)
        # Timed from the start of the publish command (its transaction waits for anvil's next block).
        started_ms = int(time.time() * 1000)
        p = fleet.publish(1, image)
        done = fleet.wait_installed(devs, 1, timeout=180)
        for d, s in done.items():
            assert s["installed"]["hash"] == p["target"], f"{d} runs {s['installed']}"
        t = (max(s["last_install"]["at_ms"] for s in done.values()) - started_ms) / 1000.0
        sources = {d: ids.get(proof_source(fleet, d) or "", "?") for d in devs}
        relayed = sum(1 for d in devs if sources[d] not in ("fc-repo", "?"))
        log(f"scenario 8: release 1 on {n} devices in {t:.2f} s; release proofs from {sources}")

        # A revocation: release 2 is held by a pause, revoked while held (the head proof's flags carry it),
        # and never fetched; release 3 then installs everywhere.
        fleet.index("pause", "--product", PRODUCT)
        image2 = next_release(image, 2, args.change_kib)
        fleet.publish(2, image2)
        for d in devs:
            wait(f"{d} holds release 2 (paused)", 120, lambda: held(fleet.status(d), 2) == "paused", every=0.5)
        fleet.index("revoke", "--product", PRODUCT, "--sequence", "2", "--reason", "bricks the radio")
        for d in devs:
            wait(f"{d} learnt of the revocation from a head proof", 120,
                 lambda: "release revoked (proven by a head proof)" in subprocess.run(
                     ["docker", "logs", d], capture_output=True, text=True).stderr, every=0.5)
        fleet.index("resume", "--product", PRODUCT)
        image3 = next_release(image2, 3, args.change_kib)
        p3 = fleet.publish(3, image3)
        done = fleet.wait_installed(devs, 3, timeout=180)
        for d, s in done.items():
            assert s["installed"]["hash"] == p3["target"], f"{d} runs {s['installed']}"
            assert s["last_fetch"]["sequence"] == 3, f"{d} fetched the revoked release: {s['last_fetch']}"
            assert s["chain"]["mode"] == "peers", s["chain"]
        log("scenario 8: release 2 revoked while paused and never fetched; release 3 on every device")

        # Freeze: the beacon stops; the repository builds no newer head proof, the devices only relay the last
        # one to each other (a replay is not news), and each reports `stale` after chain.max_staleness_secs.
        ages = []
        for d in devs:
            s = fleet.status(d)
            assert s["chain_state"] == "verified", s
            ages.append(s["chain"]["age_seconds"])
        docker("kill", "fc-beacon")
        stopped = time.time()
        for d in devs:
            wait(f"{d} stale", PEERS_STALENESS + 90, lambda: fleet.status(d)["chain_state"] == "stale", every=0.5)
        after = time.time() - stopped
        for d in devs:
            s = fleet.status(d)
            assert s["installed"]["sequence"] == 3 and s["chain"]["age_seconds"] > PEERS_STALENESS, s
        return (f"{n} devices in peers mode with no RPC URL on a network of their own with no route to anvil or "
                f"the beacon (a connect fails: {why}) "
                f"(only the repository, light mode, serves proofs; devices 6-10 know only device 1): release 1 "
                f"installed on all {t:.2f} s after the publish command started ({relayed} release proofs relayed "
                f"by devices); release 2 revoked while paused reached all through head proofs and was never "
                f"fetched, release 3 installed; "
                f"beacon killed (newest head proof then {min(ages)}-{max(ages)} s old): all {n} report stale "
                f"within {after:.0f} s (max_staleness {PEERS_STALENESS} s)")
    finally:
        fleet.save_logs()
        fleet.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--image", default="firmchain:swarm")
    ap.add_argument("--anvil-image", default="firmchain-anvil:swarm")
    ap.add_argument("--results", required=True)
    ap.add_argument("--size-mib", type=int, default=4)
    ap.add_argument("--change-kib", type=int, default=256)
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--only", help="run one scenario (`rollout` or `peers`), write no results file")
    args = ap.parse_args()

    if args.only == "rollout":
        log(f"scenario 7: {rollout(args)}")
        return
    if args.only == "peers":
        log(f"scenario 8: {peers(args)}")
        return
    if args.only:
        ap.error(f"--only: unknown scenario {args.only!r}")
    results = scenarios(args)
    results["7"] = rollout(args)
    log(f"scenario 7: {results['7']}")
    results["8"] = peers(args)
    log(f"scenario 8: {results['8']}")
    rows = {}
    for n in [int(x) for x in args.sizes.split(",") if x]:
        rows[n] = measure(args, n)

    with open(args.results, "w") as f:
        f.write("# Swarm results\n\n")
        f.write(f"`bash tests/swarm/run.sh`, {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores. "
                f"Containers on one Docker engine (vfs), an --internal bridge network (scenario 8: two), anvil in a "
                f"container, "
                f"{args.size_mib} MiB firmware, {args.change_kib} KiB of new data per release. Time: from the "
                f"publish transaction's inclusion (when the publish command returns, at most 0.25 s later) to the last "
                f"device's install (its own clock, ms).\n\n")
        f.write("| N | release 1 | time | repository upload ÷ payload | release 2 | time | repository upload ÷ payload |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for n, r in rows.items():
            cells = " | ".join(f"{kind} {payload} B | {t:.2f} s | {ratio:.2f}×" for kind, payload, t, ratio in r)
            f.write(f"| {n} | {cells} |\n")
        f.write("\n## Scenarios\n\n")
        for k in sorted(results):
            f.write(f"{k}. {results[k]}\n")
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
