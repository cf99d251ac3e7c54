"""Docker's Engine API JSON both ways, and Podman's readings, without an engine.

The inspect answers below are cut from what Docker 20.10 and Podman 4.3 really answered (the
live tests in ``tests/test_engine_config.py`` check the same on the engines themselves); these
keep the readings tested where no engine runs.
"""

from __future__ import annotations

from pytest_sandbox_conformance.engines import podman
from pytest_sandbox_conformance.engines.base import ContainerSpec, DeviceRequest, Mount
from pytest_sandbox_conformance.engines.clone import clone_spec
from pytest_sandbox_conformance.engines.dockerapi import create_body, from_inspect

ID = "f78f78f770bc969aa863d78a7bca7d7c4aea0caef33127891cc47147417a813b"
OVERLAY = (f"/var/lib/containers/storage/overlay-containers/{ID}/userdata/overlay/3011385981"
           "/merge")

#: A container made through libpod's create the way OpenShell's Podman driver makes them, as
#: Podman's Docker-compatible inspect reported it.
PODMAN_INSPECT = {
    "Id": ID, "Name": "/sct-exp-lp", "Created": "2026-12-01T09:46:01.123456789Z",
    "State": {"Status": "running"},
    "Config": {
        "Image": "docker.io/library/sbx-busybox:local", "Hostname": "sbxhost",
        "Labels": {"sandbox-conformance.test/run": "exp"},
        "Entrypoint": ["/bin/sh", "-c", "exec sleep 2147483647"], "Cmd": [],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm", "container=podman", "OPENSHELL_X=1", "HOSTNAME=sbxhost"],
        "User": "0", "WorkingDir": "/", "Tty": False, "OpenStdin": False,
    },
    "HostConfig": {
        "Binds": [f"{OVERLAY}:/opt/openshell/bin:lowerdir=/var/lib/containers/storage/overlay/"
                  "e87f/merged,private",
                  "sct-exp-vol:/sandbox:rw,rprivate,nosuid,nodev,rbind"],
        "Mounts": None,
        "CapAdd": ["NET_ADMIN", "SYS_ADMIN"],
        "CapDrop": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETPCAP", "SYS_CHROOT"],
        "SecurityOpt": ["no-new-privileges"], "Privileged": False, "NetworkMode": "bridge",
        "ExtraHosts": ["host.containers.internal:10.0.0.2"],
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "Init": None, "Runtime": "oci",
        "Tmpfs": {"/run/t": "size=1m,rw,rprivate,nosuid,nodev,tmpcopyup"},
    },
    "Mounts": [
        {"Type": "volume", "Name": "sct-exp-vol", "Destination": "/sandbox", "RW": True,
         "Source": "/var/lib/containers/storage/volumes/sct-exp-vol/_data"},
        {"Type": "image", "Source": "localhost/sbx-supervisor-stub:local",
         "Destination": "/opt/openshell/bin", "RW": False},
        {"Type": "bind", "Source": OVERLAY, "Destination": "/opt/openshell/bin", "RW": True},
    ],
    "NetworkSettings": {"Networks": {"openshell": {}}},
}


def read(raw, is_podman):
    return from_inspect(raw, parse_created=lambda _: 1, runtime=lambda r: None,
                        is_podman=is_podman)


def test_podman_inspect_reads_back_what_podman_made():
    c = read(PODMAN_INSPECT, is_podman=True)
    assert c.mounts == (Mount("/opt/openshell/bin", "image", "localhost/sbx-supervisor-stub:local",
                              True),
                        Mount("/run/t", "tmpfs", options="size=1m"),
                        Mount("/sandbox", "volume", "sct-exp-vol"))
    # --cap-drop ALL --cap-add SYS_ADMIN,NET_ADMIN,SETUID,SETGID, relative to Podman's defaults.
    assert c.cap_add == ("NET_ADMIN", "SYS_ADMIN")
    assert set(c.cap_drop) == podman.PODMAN_DEFAULT_CAPABILITIES - {"SETUID", "SETGID"}
    assert c.network_mode == "openshell"
    assert "HOSTNAME" not in c.env and c.env["OPENSHELL_X"] == "1"
    assert (c.restart_policy, c.init, c.hostname, c.user) == ("no", None, "sbxhost", "0")


def test_the_same_answer_read_as_docker_keeps_everything_as_reported():
    c = read(PODMAN_INSPECT, is_podman=False)
    assert Mount("/opt/openshell/bin", "bind", OVERLAY) in c.mounts
    assert c.network_mode == "bridge" and c.env["HOSTNAME"] == "sbxhost"
    assert "NET_RAW" in c.cap_drop


def test_a_clone_of_it_sends_an_image_mount_and_no_overlay():
    c = read(PODMAN_INSPECT, is_podman=True)
    body = create_body(clone_spec(c, name="copy"), is_podman=True)
    host = body["HostConfig"]
    assert host["Mounts"] == [
        {"Type": "image", "Source": "localhost/sbx-supervisor-stub:local",
         "Target": "/opt/openshell/bin"},  # no ReadOnly: Podman refuses it for image mounts
        {"Type": "volume", "Source": "sct-exp-vol", "Target": "/sandbox"}]
    assert host["Tmpfs"] == {"/run/t": "size=1m"}
    assert "Binds" not in host and host["NetworkMode"] == "openshell"
    assert body["Hostname"] == "sbxhost" and body["Entrypoint"][0] == "/bin/sh"
    assert "Cmd" not in body  # [] is the image's: nothing appended to the entrypoint


def test_podman_capabilities_round_trip():
    # A plain container: nothing added or dropped.
    assert podman.capabilities([], ["AUDIT_WRITE", "MKNOD", "NET_RAW"]) == ([], [])
    # An added NET_RAW is reported by Podman nowhere but in the missing drop.
    assert podman.capabilities([], ["AUDIT_WRITE", "MKNOD"]) == (["NET_RAW"], [])
    # A dropped default it has, beside the three it never has.
    assert podman.capabilities(["CAP_SYS_ADMIN"], ["AUDIT_WRITE", "CHOWN", "MKNOD", "NET_RAW"]) \
        == (["SYS_ADMIN"], ["CHOWN"])


def test_podman_network_names():
    assert podman.network_mode("bridge", {"Networks": {"podman": {}}}) == "bridge"
    assert podman.network_mode("bridge", {"Networks": {"sbx-net": {}}}) == "sbx-net"
    assert podman.network_mode("none", {"Networks": {}}) == "none"
    assert podman.network_mode("bridge", {"Networks": {"a": {}, "b": {}}}) == "bridge"


def test_docker_anonymous_and_named_volumes():
    raw = {"Id": ID, "Created": "x", "Config": {}, "HostConfig": {
        "Binds": ["named:/n"], "Mounts": [{"Type": "volume", "Target": "/anon"}]},
        "Mounts": [
            {"Type": "volume", "Name": "named", "Destination": "/n", "RW": True},
            {"Type": "volume", "Name": "8" * 64, "Destination": "/anon", "RW": True},
            {"Type": "volume", "Name": "2" * 64, "Destination": "/image-volume", "RW": True}]}
    c = read(raw, is_podman=False)
    assert c.mounts == (Mount("/anon", "volume"), Mount("/image-volume", "volume"),
                        Mount("/n", "volume", "named"))


def test_create_body_sends_every_field_and_leaves_defaults_out():
    spec = ContainerSpec(name="x", image="img", labels={"a": "1"}, entrypoint=("/sup",),
                         command=("a",), env={"K": "v"}, user="0", working_dir="/w",
                         hostname="h", tty=True, stdin_open=True,
                         mounts=(Mount("/b", source="/host", read_only=True),
                                 Mount("/t", "tmpfs", options="size=1m")),
                         cap_add=("sys_admin",), cap_drop=("ALL",),
                         security_opt=("no-new-privileges",), privileged=True,
                         network_mode="host", extra_hosts=("h:1.2.3.4",),
                         restart_policy="on-failure", restart_retries=2, init=False,
                         device_requests=(DeviceRequest(count=-1, capabilities=(("gpu",),)),),
                         runtime="nvidia", nano_cpus=10, memory=7 * 2**20)
    body = create_body(spec)
    assert {k: body[k] for k in ("Image", "Entrypoint", "Cmd", "Env", "User", "WorkingDir",
                                 "Hostname", "Tty", "OpenStdin", "Labels")} == {
        "Image": "img", "Entrypoint": ["/sup"], "Cmd": ["a"], "Env": ["K=v"], "User": "0",
        "WorkingDir": "/w", "Hostname": "h", "Tty": True, "OpenStdin": True, "Labels": {"a": "1"}}
    host = body["HostConfig"]
    assert host == {
        "NetworkMode": "host", "Privileged": True,
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        "Mounts": [{"Type": "bind", "Source": "/host", "Target": "/b", "ReadOnly": True}],
        "Tmpfs": {"/t": "size=1m"}, "CapAdd": ["SYS_ADMIN"], "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"], "ExtraHosts": ["h:1.2.3.4"], "Runtime": "nvidia",
        "NanoCpus": 10, "Memory": 7 * 2**20, "Init": False,
        "DeviceRequests": [{"Driver": "", "Count": -1, "DeviceIDs": [],
                            "Capabilities": [["gpu"]], "Options": {}}]}
    plain = create_body(ContainerSpec(name="y", image="img"))
    assert plain == {"Image": "img", "Labels": {}, "Tty": False, "OpenStdin": False,
                     "HostConfig": {"NetworkMode": "none", "Privileged": False,
                                    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}}
