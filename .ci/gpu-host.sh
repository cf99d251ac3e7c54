#!/usr/bin/env bash
# The suite's GPU scenarios against a REAL GPU, on a GPU host that has no container engine, no
# NVIDIA Container Toolkit, no registry and no network (the device machines lent to this
# project: Ubuntu 24.04, /dev/nvidia*, driver files under /usr/local/nvidia). Run as root, from
# carried files only (see docs/gpu-host.md for how to prepare .gpu/):
#
#   .gpu/engine.tar.xz  bin/{dockerd,containerd,containerd-shim-runc-v2} from Debian trixie's
#                       docker.io 26.1.5 and containerd 1.7.24, bin/runc from Debian bookworm's runc
#                       1.1.5 (trixie's needs glibc 2.38), lib/ libseccomp, libsystemd and their
#                       needs from bookworm (used only where the host lacks them)
#   .gpu/whl/*.whl      the Python packages the host's Python lacks (docker, testcontainers,
#                       jsonschema and its needs), cp312
#   .gpu/busybox        a static busybox (sbx-busybox:local is made from it)
#
# What it does: unpacks the engine into /opt/sbx-realgpu, writes a CDI spec for the host's NVIDIA
# devices (nvidia.com/gpu=0 and nvidia.com/gpu=all: OpenShell's Docker driver asks for the first,
# the suite's probe and `gpu: cdi` for the second), starts a Docker 26 engine of its own on
# unix:///run/sbx-realgpu/docker.sock with CDI on (features.cdi, cdi-spec-dirs), no bridge, no
# iptables, its own containerd; installs the Python packages, makes the image, proves the GPU is
# inside a container (nvidia-smi -L, /dev/nvidia*) and runs `pytest -m gpu --sandbox-gpu=required`
# (pinned, then exhaustive) WITHOUT SANDBOX_CONFORMANCE_GPU_EMULATED. Logs go to $OUT (default
# /tmp/sbx-realgpu-out); the engine is stopped at the end.
#
# GPU request styles it offers:
#   gpu-cdi      Docker 26's own CDI support (what OpenShell's Docker driver uses). Real.
#   gpu-gpus     `--gpus` (DeviceRequest capabilities [["gpu"]]) and
#   gpu-runtime  `--runtime nvidia` + NVIDIA_VISIBLE_DEVICES: no NVIDIA Container Toolkit here, so
#                a stand-in does its job: a no-op nvidia-container-runtime-hook on dockerd's PATH
#                (Docker then registers its "nvidia" device driver), and an OCI runtime wrapper
#                (the default runtime, also registered as "nvidia") that adds the host's NVIDIA
#                device nodes, device-cgroup rules and driver mounts to config.json when the
#                container's environment has NVIDIA_VISIBLE_DEVICES (not void/none) and no
#                /dev/nvidia* node yet, then execs runc. Every decision goes to inject.log.
#
# FAKE=1: for a machine without a GPU (the CPU CI machines): stand-in devices (/dev/null seen as
# /dev/nvidiactl inside), no driver mounts; the suite then reports the styles as EMULATED.
# Other knobs: OUT, EXHAUSTIVE=0 (skip the exhaustive run), EXHAUSTIVE_TIMEOUT (s, default 200),
# XDIST_N (pytest-xdist workers, default min(nproc, 11)), KEEP_ENGINE=1 (leave the engine running at the end).
#
# Usage:  bash .ci/gpu-host.sh 2>&1 | tee "$OUT/gpu-host.log"        (as root)
#         FAKE=1 OUT=/tmp/out bash .ci/gpu-host.sh                      (CPU machine, as root)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
G=$REPO/.gpu
FAKE=${FAKE:-0}
OUT=${OUT:-/tmp/sbx-realgpu-out}
D=$OUT/details                # every log; at the end packed into $OUT/details.tgz, and the main
                              # ones copied to $OUT (the device tool brings back 8 files at most)
EXHAUSTIVE=${EXHAUSTIVE:-1}
EXHAUSTIVE_TIMEOUT=${EXHAUSTIVE_TIMEOUT:-200}
N=$(nproc); XDIST_N=${XDIST_N:-$(( N < 11 ? N : 11 ))}   # 11 GPU items when exhaustive
P=/opt/sbx-realgpu            # the engine's binaries
RUN=/run/sbx-realgpu          # socket, exec root, pidfile, CDI spec, logs of the wrappers
DATA=/var/lib/sbx-realgpu     # data root
SOCK=$RUN/docker.sock
URL=unix://$SOCK
IMAGE=sbx-busybox:local
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT" "$D"
T0=$(date +%s)
log() { echo "gpu-host [$(( $(date +%s) - T0 ))s]: $*"; }
die() { echo "gpu-host: FAILED: $*" >&2; exit 1; }
unset SANDBOX_CONFORMANCE_GPU_EMULATED
finish() {  # at exit, whatever happened: stop the engine (unless KEEP_ENGINE=1), pack the logs
  if [ "${KEEP_ENGINE:-0}" = 1 ]; then
    log "KEEP_ENGINE=1: the engine stays on $URL"
  elif [ -s "$RUN/docker.pid" ] && kill -0 "$(cat "$RUN/docker.pid")" 2>/dev/null; then
    local pid; pid=$(cat "$RUN/docker.pid")
    log "stopping dockerd (pid $pid)"
    kill "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  cp "$RUN/inject.log" "$RUN/hook.log" "$RUN/daemon.json" "$D/" 2>/dev/null
  tar -C "$OUT" -czf "$OUT/details.tgz" details 2>/dev/null
  local f; for f in direct-proof.txt pytest-pinned.txt pytest-exhaustive.txt report-pinned.json \
    report-exhaustive.json; do [ -f "$D/$f" ] && cp "$D/$f" "$OUT/"; done
  rm -rf "$D"
}
trap finish EXIT

[ "$(id -u)" = 0 ] || die "run as root"
[ -f "$G/engine.tar.xz" ] || die "no $G/engine.tar.xz (see docs/gpu-host.md)"

# -- what the host is -------------------------------------------------------------------------
PY=$(command -v python3) || die "no python3"
log "host facts (FAKE=$FAKE)"
{
  echo "date: $(date -u +%FT%TZ)"; echo "kernel: $(uname -r)"
  grep -E '^(PRETTY_NAME)=' /etc/os-release 2>/dev/null
  echo "glibc: $(ldd --version 2>/dev/null | head -1)"
  echo "python: $PY $($PY --version 2>&1)"
  echo "cgroup fs: $(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
  echo "nvidia-smi: $(command -v nvidia-smi || echo none on PATH)"
  ls -la /dev/nvidia* 2>&1
  ls /usr/local/nvidia 2>&1 | tr '\n' ' '; echo
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  fi
} 2>&1 | tee "$D/host.txt"

# -- the engine's files ----------------------------------------------------------------------
log "unpacking $G/engine.tar.xz into $P"
rm -rf "$P"; mkdir -p "$P" "$RUN/cdi" "$RUN/bin" "$RUN/exec" "$DATA"
if command -v xz >/dev/null; then
  tar -C "$P" -xJf "$G/engine.tar.xz" || die "unpack"
else  # no xz-utils on the host: Python's lzma
  "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2])" \
    "$G/engine.tar.xz" "$P" || die "unpack"
fi
LIBS=""
for b in dockerd runc; do
  if ldd "$P/bin/$b" 2>/dev/null | grep -q 'not found'; then LIBS=$P/lib; fi
done
[ -n "$LIBS" ] && log "the host lacks some libraries of dockerd/runc: using the carried ones ($LIBS)"
LD_LIBRARY_PATH=$LIBS "$P/bin/dockerd" --version && "$P/bin/containerd" --version && \
  LD_LIBRARY_PATH=$LIBS "$P/bin/runc" --version | head -1 || die "the engine's binaries do not run"

# cgroups: dockerd needs them mounted (v2 or v1).
case $(stat -fc %T /sys/fs/cgroup 2>/dev/null) in
  cgroup2fs|tmpfs) ;;
  *) log "mounting cgroup2 on /sys/fs/cgroup"; mount -t cgroup2 none /sys/fs/cgroup || true ;;
esac

# -- the GPU: device nodes, driver mounts; CDI spec and the runtime wrapper's edits ------------
log "writing the CDI spec ($RUN/cdi/nvidia.json) and the runtime wrapper's edits"
FAKE=$FAKE "$PY" - "$RUN" <<'PYEOF' || die "could not describe the GPU"
import glob, json, os, re, shutil, stat, sys
run = sys.argv[1]
fake = os.environ.get("FAKE") == "1"
def node(path, host=None):
    st = os.stat(host or path)
    if not stat.S_ISCHR(st.st_mode):
        print(f"skipped {host or path}: not a character device", file=sys.stderr)
        return None
    return {"path": path, "hostPath": host or path, "type": "c",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}
if fake:
    # A stand-in: /dev/null seen as /dev/nvidiactl (no /dev/nvidiaN: the suite calls it
    # emulated), an empty folder as the driver's, and the variable: the same edit paths as real.
    gpus = {"0": [node("/dev/nvidiactl", "/dev/null")]}
    os.makedirs(f"{run}/fake-driver", exist_ok=True)
    open(f"{run}/fake-driver/FAKE-no-driver-here", "w").close()
    common, mounts = [], [(f"{run}/fake-driver", "/usr/local/nvidia")]
    env = ["LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib"]
else:
    gpus = {m.group(1): [node(p)] for p in sorted(glob.glob("/dev/nvidia[0-9]*"))
            if (m := re.fullmatch(r"/dev/nvidia(\d+)", p))}
    if not gpus:
        raise SystemExit("no /dev/nvidiaN device on this host (FAKE=1 for a machine without GPU)")
    common = [node(p) for p in ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                "/dev/nvidia-modeset") if os.path.exists(p)]
    common += [node(p) for p in sorted(glob.glob("/dev/nvidia-caps/*"))]
    common = [n for n in common if n]
    mounts = []
    smi = shutil.which("nvidia-smi") or next(
        (p for p in ("/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/nvidia-smi") if os.path.exists(p)),
        None)
    if smi:
        mounts.append((os.path.realpath(smi), "/usr/bin/nvidia-smi"))
    for d in ("/usr/local/nvidia", "/lib/x86_64-linux-gnu", "/lib64"):
        if os.path.isdir(d):
            mounts.append((d, d))
    env = ["LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib"]
everything = [n for ns in gpus.values() for n in ns]
def cdi_node(n):
    return {"path": n["path"], "hostPath": n["hostPath"]}
spec = {
    "cdiVersion": "0.5.0",
    "kind": "nvidia.com/gpu",
    "devices": [{"name": k, "containerEdits": {"deviceNodes": [cdi_node(n) for n in v]}}
                for k, v in gpus.items()]
               + [{"name": "all", "containerEdits": {"deviceNodes": [cdi_node(n) for n in everything]}}],
    "containerEdits": {
        "deviceNodes": [cdi_node(n) for n in common],
        "mounts": [{"hostPath": h, "containerPath": c, "type": "bind",
                    "options": ["ro", "nosuid", "nodev", "rbind"]}
                   for h, c in mounts],
        "env": env,
    },
}
with open(f"{run}/cdi/nvidia.json", "w") as f:
    json.dump(spec, f, indent=1)
with open(f"{run}/gpu-edits.json", "w") as f:
    json.dump({"gpus": gpus, "common": common, "mounts": mounts, "env": env}, f, indent=1)
print(json.dumps(spec, indent=1))
PYEOF
cp "$RUN/cdi/nvidia.json" "$D/cdi-nvidia.json"

# The wrapper's config.json editor (the job nvidia-container-runtime does on a toolkit host).
cat > "$P/bin/sbx-gpu-inject.py" <<'PYEOF'
"""Add the host's NVIDIA devices to an OCI config.json whose process asks for them."""
import json, sys, time
config_path, edits_path, bundle = sys.argv[1], sys.argv[2], sys.argv[3]
with open(config_path) as f:
    cfg = json.load(f)
env = cfg.get("process", {}).get("env", [])
visible = next((e.split("=", 1)[1] for e in env if e.startswith("NVIDIA_VISIBLE_DEVICES=")), None)
tag = f"{time.strftime('%H:%M:%S')} {bundle.rstrip('/').rsplit('/', 1)[-1][:12]}"
linux = cfg.setdefault("linux", {})
have = [d.get("path") for d in linux.get("devices") or [] if d.get("path", "").startswith("/dev/nvidia")]
if visible in (None, "", "void", "none"):
    print(f"{tag} no GPU asked (NVIDIA_VISIBLE_DEVICES={visible}); devices already: {have}")
    sys.exit(0)
if have:
    print(f"{tag} NVIDIA_VISIBLE_DEVICES={visible}: already has {have} (CDI); nothing added")
    sys.exit(0)
with open(edits_path) as f:
    edits = json.load(f)
gpus = edits["gpus"]
wanted = list(gpus) if visible == "all" else [v.strip() for v in visible.split(",") if v.strip() in gpus]
nodes = [n for k in wanted for n in gpus[k]] + edits["common"]
devices = linux.setdefault("devices", [])
allow = linux.setdefault("resources", {}).setdefault("devices", [])
for n in nodes:
    devices.append({"path": n["path"], "type": "c", "major": n["major"], "minor": n["minor"],
                    "fileMode": 0o666, "uid": 0, "gid": 0})
    allow.append({"allow": True, "type": "c", "major": n["major"], "minor": n["minor"],
                  "access": "rwm"})
for host, target in edits["mounts"]:
    cfg.setdefault("mounts", []).append({"destination": target, "type": "bind", "source": host,
                                         "options": ["rbind", "ro", "nosuid", "nodev"]})
names = {e.split("=", 1)[0] for e in env}
env.extend(e for e in edits["env"] if e.split("=", 1)[0] not in names)
with open(config_path, "w") as f:
    json.dump(cfg, f)
print(f"{tag} NVIDIA_VISIBLE_DEVICES={visible}: added {[n['path'] for n in nodes]} "
      f"and {len(edits['mounts'])} mount(s)")
PYEOF
cat > "$P/bin/sbx-gpu-runtime" <<EOF
#!/bin/sh
# OCI runtime wrapper (.ci/gpu-host.sh): on create, add the host's NVIDIA devices to config.json
# when the container asks for a GPU through NVIDIA_VISIBLE_DEVICES; then exec runc.
bundle=""; cmd=""; prev=""
for a in "\$@"; do
  case "\$prev" in --bundle|-b) bundle=\$a ;; esac
  case "\$a" in
    --bundle=*) bundle=\${a#--bundle=} ;;
    create|run) [ -z "\$cmd" ] && cmd=\$a ;;
  esac
  prev=\$a
done
if [ -n "\$cmd" ]; then
  [ -n "\$bundle" ] || bundle=\$(pwd)
  if [ -f "\$bundle/config.json" ]; then
    "$PY" "$P/bin/sbx-gpu-inject.py" "\$bundle/config.json" "$RUN/gpu-edits.json" "\$bundle" \
      >> "$RUN/inject.log" 2>&1 || echo "inject failed for \$bundle" >> "$RUN/inject.log"
  fi
fi
LD_LIBRARY_PATH=$LIBS exec "$P/bin/runc" "\$@"
EOF
chmod +x "$P/bin/sbx-gpu-runtime"
# Docker registers its "nvidia" device driver (what --gpus selects) when this is on its PATH;
# the real device work is the wrapper's.
cat > "$RUN/bin/nvidia-container-runtime-hook" <<EOF
#!/bin/sh
cat >/dev/null
echo "\$(date -u +%T) hook \$*" >> $RUN/hook.log
exit 0
EOF
chmod +x "$RUN/bin/nvidia-container-runtime-hook"
: > "$RUN/inject.log"; : > "$RUN/hook.log"

# -- the engine -------------------------------------------------------------------------------
overlay_works() {
  local d; d=$(mktemp -d); mkdir "$d"/{l,u,w,m}
  local ok=1
  if timeout 10 mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" \
      2>/dev/null; then umount "$d/m"; ok=0; fi
  rm -rf "$d"; return $ok
}
api() {  # PATH: GET it from the engine (no curl needed), print the body; fails unless 200
  "$PY" - "$SOCK" "$1" <<'PYEOF'
import http.client, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.settimeout(5)
        self.sock.connect(sys.argv[1])
try:
    c = C("d"); c.request("GET", sys.argv[2]); r = c.getresponse(); body = r.read()
except OSError:
    sys.exit(1)
sys.stdout.write(body.decode(errors="replace")); sys.exit(0 if r.status == 200 else 1)
PYEOF
}
pings() { api /_ping >/dev/null 2>&1; }
if pings; then die "something already answers on $URL; stop it first"; fi
DRIVER=vfs; overlay_works && DRIVER=overlay2
cat > "$RUN/daemon.json" <<EOF
{
  "storage-driver": "$DRIVER",
  "log-driver": "json-file",
  "userland-proxy": false,
  "features": {"cdi": true},
  "cdi-spec-dirs": ["$RUN/cdi"],
  "runtimes": {
    "nvidia": {"path": "$P/bin/sbx-gpu-runtime"},
    "sbx-runc": {"path": "$P/bin/sbx-gpu-runtime"}
  },
  "default-runtime": "sbx-runc"
}
EOF
rm -f "$SOCK" "$RUN/docker.pid"
log "dockerd 26 on $URL (storage $DRIVER, data $DATA, log $D/dockerd.log)"
PATH="$P/bin:$RUN/bin:$PATH" LD_LIBRARY_PATH=$LIBS setsid nohup "$P/bin/dockerd" \
  --config-file "$RUN/daemon.json" -H "$URL" --data-root "$DATA" --exec-root "$RUN/exec" \
  --pidfile "$RUN/docker.pid" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  >"$D/dockerd.log" 2>&1 </dev/null &
for i in $(seq 120); do pings && break; sleep 0.5; done
pings || { tail -n 30 "$D/dockerd.log"; die "dockerd did not answer within 60 s"; }
api /info | "$PY" -c "
import json, sys; i = json.load(sys.stdin)
print('engine:', i['ServerVersion'], 'cgroup', i.get('CgroupVersion'), i.get('CgroupDriver'),
      'storage', i['Driver'], 'runtimes', sorted(i['Runtimes']), 'default', i['DefaultRuntime'],
      'CDI spec dirs', i.get('CDISpecDirs'))"

# -- Python packages and the project -----------------------------------------------------------
have_py() {
  "$PY" -c "import importlib.metadata as m; m.version('pytest-sandbox-conformance')
import docker, testcontainers, jsonschema, yaml, pytest, xdist" 2>/dev/null
}
pip_in() {
  "$PY" -m pip install -q --no-index --no-cache-dir "$@" \
    || "$PY" -m pip install -q --no-index --no-cache-dir --break-system-packages "$@"
}
if have_py; then
  log "the project and its packages are already importable"
else
  log "installing the carried wheels and the project (pip --no-index)"
  pip_in --find-links "$G/whl" docker testcontainers jsonschema 2>&1 | tail -5
  pip_in --no-deps --no-build-isolation -e "$REPO" 2>&1 | tail -5
  have_py || die "the project is not importable after pip install"
fi
"$PY" -m pip list 2>/dev/null | grep -i -E '^(pytest|pytest-xdist|docker|testcontainers|jsonschema|pyyaml|pytest-sandbox-conformance) ' \
  | tr -s ' ' | tr '\n' ';'; echo

log "making $IMAGE from $G/busybox"
chmod +x "$G/busybox" 2>/dev/null
DOCKER_HOST=$URL "$PY" -c "import sys; from pytest_sandbox_conformance.cli import main
sys.exit(main(['make-image', '--busybox', '$G/busybox']))" || die "make-image"

# -- direct proof: containers with each GPU request style, looking inside ----------------------
log "direct proof: containers with GPU requests (look inside: nvidia-smi -L, /dev/nvidia*)"
URL=$URL IMAGE=$IMAGE timeout 90 "$PY" - <<'PYEOF' 2>&1 | tee "$D/direct-proof.txt"
import os, time, docker
from docker.types import DeviceRequest
c = docker.DockerClient(base_url=os.environ["URL"])
look = ("echo \"NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES LD_LIBRARY_PATH=$LD_LIBRARY_PATH\"; "
        "ls -la /dev/nvidia* 2>&1; echo \"/usr/local/nvidia: $(ls /usr/local/nvidia 2>&1 | head -5 | tr '\\n' ' ')\"; "
        "if [ -x /usr/bin/nvidia-smi ]; then nvidia-smi -L; "
        "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; "
        "else echo 'no nvidia-smi inside'; fi")
cases = [
    ("plain (no GPU asked)", {}),
    ("CDI nvidia.com/gpu=0 (OpenShell's request)",
     {"device_requests": [DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=0"])]}),
    ("CDI nvidia.com/gpu=all (the suite's gpu-cdi)",
     {"device_requests": [DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])]}),
    ("--gpus all (the suite's gpu-gpus)",
     {"device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])]}),
    ("--runtime nvidia + NVIDIA_VISIBLE_DEVICES=all (the suite's gpu-runtime)",
     {"runtime": "nvidia", "environment": {"NVIDIA_VISIBLE_DEVICES": "all"}}),
]
for title, kw in cases:
    print(f"=== {title}")
    t = time.monotonic()
    try:
        ct = c.containers.run(os.environ["IMAGE"], ["sh", "-c", look], network_mode="none",
                              detach=True, labels={"sbx-realgpu.proof": "1"}, **kw)
        code = ct.wait(timeout=60)["StatusCode"]
        hc = ct.attrs["HostConfig"]
        print(ct.logs().decode(errors="replace").rstrip())
        print(f"--- exit {code}; HostConfig.DeviceRequests={hc.get('DeviceRequests')} "
              f"Runtime={hc.get('Runtime')}; {time.monotonic() - t:.1f}s")
        ct.remove(force=True)
    except Exception as exc:  # noqa: BLE001
        print(f"--- FAILED: {type(exc).__name__}: {exc}")
# What the engine's list says right after stop/kill return (Docker 20.10: always exited).
api = c.api
for op in ("stop", "kill"):
    stale, lags, n = 0, [], 20
    for _ in range(n):
        ct = api.create_container(os.environ["IMAGE"], ["sleep", "1000"], labels={"sbx-realgpu.proof": "1"},
                                  host_config=api.create_host_config(network_mode="none"))
        api.start(ct)
        api.stop(ct, timeout=0) if op == "stop" else api.kill(ct)
        t = time.monotonic()
        if api.containers(all=True, filters={"id": ct["Id"]})[0]["State"] != "exited":
            stale += 1
            while api.containers(all=True, filters={"id": ct["Id"]})[0]["State"] != "exited":
                time.sleep(0.001)
            lags.append(time.monotonic() - t)
        api.remove_container(ct, force=True)
    print(f"=== list right after {op} returned: not yet exited {stale}/{n}"
          f" (exited after at most {max(lags, default=0) * 1000:.0f} ms)")
PYEOF

# -- the suite's GPU scenarios -------------------------------------------------------------------
live=$(mktemp -d)
run_suite() {  # NAME SCHEDULES LIMIT_S EXTRA...
  local name=$1 mode=$2 limit=$3; shift 3
  log "pytest -m gpu --sandbox-schedules=$mode (limit ${limit}s); log $D/pytest-$name.txt"
  local t rc; t=$(date +%s)
  # At the limit, SIGINT first: pytest then removes its containers and prints what it had.
  (cd "$live" && timeout -s INT -k 30 "$limit" "$PY" -m pytest --sandbox-driver=reference \
    --sandbox-engine=docker "--sandbox-engine-url=$URL" --sandbox-gpu=required -m gpu \
    "--sandbox-schedules=$mode" -rs -p no:cacheprovider --durations=10 \
    "--sandbox-report=$D/report-$name.json" "$@") > "$D/pytest-$name.txt" 2>&1
  rc=$?
  echo "rc=$rc wall=$(( $(date +%s) - t ))s" >> "$D/pytest-$name.txt"
  grep -E '^(sandbox conformance|live engine|platform|created:)' "$D/pytest-$name.txt"
  echo ...; tail -n 30 "$D/pytest-$name.txt"
  log "$name: rc=$rc, $(( $(date +%s) - t )) s"
}
run_suite pinned pinned 120 -n "$XDIST_N"
# The black-box chain on the same engine: the reference driver as a process, over gRPC, behind
# the observation gate (list orders exact: the oldest-first GPU schedules run too).
served="$PY -m reference_driver.grpc_server --socket {socket} --state-dir {state_dir}"
served="$served --namespace {namespace} --poll-interval 0.05 --require-token"
run_suite grpc pinned 150 -n "$XDIST_N" --sandbox-driver=openshell-grpc \
  "--sandbox-driver-cmd=$served" --sandbox-poll-interval=0.05
# The whole pinned catalog (GPU or not) on this engine: Docker 26 lists lag behind stop/kill.
run_suite catalog pinned 150 -n "$XDIST_N" -m ""
[ "$EXHAUSTIVE" = 1 ] && run_suite exhaustive exhaustive "$EXHAUSTIVE_TIMEOUT" -n "$XDIST_N"
rm -rf "$live"
api '/containers/json?all=1' | "$PY" -c "
import json, sys; print('containers left on the engine:', len(json.load(sys.stdin)))"
echo "runtime wrapper decisions ($RUN/inject.log):"; sed 's/^/  /' "$RUN/inject.log" | tail -n 12
echo "hook calls: $(wc -l < "$RUN/hook.log")"
log "done; logs in $OUT (details.tgz: all of them)"
