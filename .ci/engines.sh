#!/usr/bin/env bash
# Two extra engines for the live suite, beside the Docker engine .ci/setup prepares (idempotent:
# whatever already answers is kept; run as root on Debian):
#
#   podman  Podman 4.3 (Debian's) through its Docker-compatible API on
#           unix:///run/podman/podman.sock, configured for root on these machines (lower default
#           ulimits, cgroupfs, file events logger; our containers use network_mode none), with
#           the image sbx-busybox:local.
#   gpu     an emulated GPU host: a private dockerd of our own on unix:///run/sbx-gpu/docker.sock
#           (own data root, exec root, containerd, pidfile; no bridge, no iptables) whose PATH has
#           a fake nvidia-container-runtime-hook, so Docker 20.10 registers its "nvidia" device
#           driver and `--gpus` requests START (NVIDIA_VISIBLE_DEVICES in the environment, no
#           device); checked with a `--gpus all` container. Only for the suite's GPU scenarios
#           with SANDBOX_CONFORMANCE_GPU_EMULATED=1; there is no GPU behind it.
#
# Usage:  bash .ci/engines.sh [podman] [gpu]      (default: both)
#         source .ci/engines.sh [podman] [gpu]    (also exports the URLs in this shell)
# Writes .ci/engines.env (SANDBOX_PODMAN_URL=..., SANDBOX_GPU_DOCKER_URL=...: every one of the two
# that answers at the end, asked for this time or not) and prints it. Logs: /var/log/sbx-podman.log, /var/log/sbx-gpu-dockerd.log.
# Exit status: 0 when every engine asked for answers (with the image), else 1.

_sbx_engines_main() (
  set -euo pipefail
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
  log() { echo "engines: $*"; }
  die() { echo "engines: FAILED: $*" >&2; return 1; }

  local want=("$@"); [ ${#want[@]} -gt 0 ] || want=(podman gpu)
  local image=sbx-busybox:local
  local podman_sock=/run/podman/podman.sock podman_log=/var/log/sbx-podman.log
  local gpu_dir=/run/sbx-gpu gpu_data=/var/lib/sbx-gpu gpu_log=/var/log/sbx-gpu-dockerd.log
  local gpu_sock=$gpu_dir/docker.sock
  local env_file=.ci/engines.env failed=0

  [ "$(id -u)" = 0 ] || { die "run as root"; return 1; }

  pings() { curl -sf --max-time 3 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
  wait_ping() {  # SOCKET SECONDS WHAT LOG
    local i
    for ((i = 0; i < $2 * 2; i++)); do
      if pings "$1"; then log "$3 answers on unix://$1 (after ~$((i / 2)) s)"; return 0; fi
      sleep 0.5
    done
    echo "engines: $3 did not answer on unix://$1 within $2 s; last lines of $4:" >&2
    tail -n 20 "$4" >&2 || true
    return 1
  }
  alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
  apt_install() {
    log "apt-get install -y $*"
    timeout 600 apt-get install -y -qq "$@" >/dev/null 2>&1 \
      || { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq "$@" >/dev/null; }
  }
  overlay_works() {  # can the kernel mount overlay here (else: vfs storage)
    local d; d=$(mktemp -d); mkdir "$d"/{l,u,w,m}
    local ok=1
    if timeout 10 mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" \
        2>/dev/null; then umount "$d/m"; ok=0; fi
    rm -rf "$d"; return $ok
  }
  cli_ready() {
    command -v sandbox-conformance >/dev/null && return 0
    log "installing the package (pip install -e '.[dev]')"
    timeout 600 python3 -m pip install -q -e '.[dev]'
  }
  make_image() {  # SOCKET: sbx-busybox:local there (sandbox-conformance make-image on DOCKER_HOST)
    if curl -sf --max-time 10 --unix-socket "$1" "http://d/images/$image/json" >/dev/null; then
      log "image $image already on unix://$1"; return 0
    fi
    [ -x /bin/busybox ] || apt_install busybox-static
    cli_ready
    log "DOCKER_HOST=unix://$1 sandbox-conformance make-image"
    DOCKER_HOST=unix://$1 timeout 120 sandbox-conformance make-image
  }

  # -- Podman ---------------------------------------------------------------------------------
  start_podman() {
    command -v podman >/dev/null || apt_install podman
    # --init (HostConfig.Init) needs Podman's init binary, a package of its own on Debian.
    [ -x /usr/libexec/podman/catatonit ] || apt_install catatonit
    log "podman $(podman --version | awk '{print $3}')"
    # Debian's Podman 4.3 as root here: it asks for higher file/process limits than root's hard
    # limits ("error setting rlimit type 7: operation not permitted"), so lower its defaults.
    mkdir -p /etc/containers/containers.conf.d /run/podman
    local conf=/etc/containers/containers.conf.d/50-sbx-conformance.conf
    cat > "$conf.tmp" <<'EOF'
# written by .ci/engines.sh (pytest-sandbox-conformance)
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    mv "$conf.tmp" "$conf"; log "wrote $conf"
    if [ ! -e /etc/containers/storage.conf ]; then
      local driver=vfs; overlay_works && driver=overlay
      printf '%s\n' '# written by .ci/engines.sh (pytest-sandbox-conformance)' '[storage]' \
        "driver = \"$driver\"" 'graphroot = "/var/lib/containers/storage"' \
        'runroot = "/run/containers/storage"' > /etc/containers/storage.conf
      log "wrote /etc/containers/storage.conf (driver $driver)"
    fi
    if pings "$podman_sock"; then
      log "the Podman service already answers on unix://$podman_sock"
    else
      local pidfile=/run/podman/sbx-service.pid
      if alive "$pidfile"; then
        log "the Podman service (pid $(cat $pidfile)) is starting; waiting"
      else
        rm -f "$podman_sock"
        log "podman system service --time=0 unix://$podman_sock (log: $podman_log)"
        setsid nohup podman system service --time=0 "unix://$podman_sock" \
          >>"$podman_log" 2>&1 </dev/null &
        echo $! > "$pidfile"
      fi
      wait_ping "$podman_sock" 60 "the Podman service" "$podman_log" || return 1
    fi
    if ! make_image "$podman_sock"; then
      # Fallback: the CLI's own import (same storage as the service).
      log "make-image failed on Podman; podman import instead"
      local tar; tar=$(mktemp --suffix=.tar)
      python3 -c "import sys; from pytest_sandbox_conformance.engines.image import \
busybox_rootfs_tar, find_static_busybox; sys.stdout.buffer.write(busybox_rootfs_tar(\
find_static_busybox()))" > "$tar"
      timeout 120 podman import --change 'CMD ["sleep", "2147483647"]' "$tar" "$image"
      rm -f "$tar"
    fi
    curl -sf --max-time 10 --unix-socket "$podman_sock" "http://d/images/$image/json" >/dev/null \
      || { die "$image is not on Podman"; return 1; }
  }

  # -- the emulated GPU engine ------------------------------------------------------------------
  start_gpu_dockerd() {
    command -v dockerd >/dev/null || apt_install docker.io
    mkdir -p "$gpu_dir/bin" "$gpu_dir/exec" "$gpu_data"
    # Docker 20.10 registers its "nvidia" device driver (what `--gpus` selects) when this hook is
    # on dockerd's PATH, and adds it as an OCI prestart hook plus NVIDIA_VISIBLE_DEVICES. The
    # stand-in reads the container state runc gives it and succeeds: no device is attached.
    cat > "$gpu_dir/bin/nvidia-container-runtime-hook.tmp" <<EOF
#!/bin/sh
# fake NVIDIA hook (.ci/engines.sh): emulated GPU engine, no device is attached
cat >/dev/null
echo "\$(date -u +%FT%TZ) \$*" >> $gpu_dir/hook.log
exit 0
EOF
    chmod +x "$gpu_dir/bin/nvidia-container-runtime-hook.tmp"
    mv "$gpu_dir/bin/nvidia-container-runtime-hook.tmp" "$gpu_dir/bin/nvidia-container-runtime-hook"
    if pings "$gpu_sock"; then
      log "the GPU dockerd already answers on unix://$gpu_sock"
    elif alive "$gpu_dir/docker.pid"; then
      log "the GPU dockerd (pid $(cat $gpu_dir/docker.pid)) is starting; waiting"
      wait_ping "$gpu_sock" 90 "the GPU dockerd" "$gpu_log" || return 1
    else
      # Its own config file: the default /etc/docker/daemon.json (the main engine's) may set
      # data-root, which dockerd refuses to see both there and as a flag.
      local driver=vfs; overlay_works && driver=overlay2
      printf '{"storage-driver": "%s", "log-driver": "json-file"}\n' "$driver" \
        > "$gpu_dir/daemon.json"
      rm -f "$gpu_sock" "$gpu_dir/docker.pid"
      log "dockerd -H unix://$gpu_sock (storage $driver, data $gpu_data, log $gpu_log)"
      # dockerd starts its own containerd under --exec-root (…/exec/containerd), apart from the
      # main engine's.
      PATH="$gpu_dir/bin:$PATH" setsid nohup dockerd --config-file "$gpu_dir/daemon.json" \
        -H "unix://$gpu_sock" --data-root "$gpu_data" --exec-root "$gpu_dir/exec" \
        --pidfile "$gpu_dir/docker.pid" --bridge=none --iptables=false --ip-masq=false \
        >>"$gpu_log" 2>&1 </dev/null &
      wait_ping "$gpu_sock" 90 "the GPU dockerd" "$gpu_log" || return 1
    fi
    make_image "$gpu_sock" || { die "make-image failed on the GPU dockerd"; return 1; }
    log "check: docker run --gpus all (DeviceRequest count=-1 capabilities [[gpu]]) starts"
    local out
    out=$(timeout 60 docker -H "unix://$gpu_sock" run --rm --network none --gpus all "$image" \
      env 2>&1) || { die "--gpus all did not start: $out"; return 1; }
    echo "$out" | grep -q '^NVIDIA_VISIBLE_DEVICES=all$' \
      || { die "no NVIDIA_VISIBLE_DEVICES=all in the container: $out"; return 1; }
    log "ok: the --gpus all container ran with NVIDIA_VISIBLE_DEVICES=all" \
      "(hook calls so far: $(wc -l < "$gpu_dir/hook.log" 2>/dev/null || echo 0))"
  }

  local what
  for what in "${want[@]}"; do
    case $what in
      podman) start_podman || { failed=1; echo "engines: Podman is not ready" >&2; } ;;
      gpu) start_gpu_dockerd || { failed=1; echo "engines: the GPU engine is not ready" >&2; } ;;
      *) die "unknown engine '$what' (podman, gpu)"; failed=1 ;;
    esac
  done
  # Every engine that answers now (asked for this time or not) goes into the file.
  : > "$env_file.tmp"
  pings "$podman_sock" && echo "SANDBOX_PODMAN_URL=unix://$podman_sock" >> "$env_file.tmp"
  pings "$gpu_sock" && echo "SANDBOX_GPU_DOCKER_URL=unix://$gpu_sock" >> "$env_file.tmp"
  mv "$env_file.tmp" "$env_file"
  log "wrote $env_file:"; sed 's/^/  /' "$env_file"
  return $failed
)

_sbx_engines_rc=0
_sbx_engines_main "$@" || _sbx_engines_rc=$?
if (return 0 2>/dev/null); then  # sourced: export what came up, keep the caller's shell options
  if [ -f "$(dirname "${BASH_SOURCE[0]}")/engines.env" ]; then
    set -a; . "$(dirname "${BASH_SOURCE[0]}")/engines.env"; set +a
  fi
  return $_sbx_engines_rc
fi
exit $_sbx_engines_rc
