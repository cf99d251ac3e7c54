//! sbx-peer-driver: the conformance suite's own Rust peer driver. It serves the OpenShell
//! compute-driver gRPC service (`openshell.compute.v1.ComputeDriver`, generated from the
//! project's proto) on a Unix socket and runs each sandbox as a Docker/Podman container,
//! reproducing the observable behaviour of OpenShell's Docker driver (and, with
//! `--watch events`, of its Podman driver's event-driven watch). See README.md.

mod driver;
mod engine;
mod log;
mod snapshot;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use tokio::net::{UnixListener, UnixStream};

use crate::driver::{Config, Driver};
use crate::engine::{Engine, EngineKind};
use crate::pb::compute_driver_server::ComputeDriverServer;

pub mod pb {
    tonic::include_proto!("openshell.compute.v1");
}

pub const LABEL_MANAGED_BY: &str = "openshell.ai/managed-by";
pub const LABEL_MANAGED_BY_VALUE: &str = "openshell";
pub const LABEL_SANDBOX_ID: &str = "openshell.ai/sandbox-id";
pub const LABEL_SANDBOX_NAME: &str = "openshell.ai/sandbox-name";
pub const LABEL_SANDBOX_NAMESPACE: &str = "openshell.ai/sandbox-namespace";
pub const LABEL_SANDBOX_WORKSPACE: &str = "openshell.ai/sandbox-workspace";
/// Set only with --generation-label (the suite's contract names it; OpenShell main sets none).
pub const LABEL_GENERATION: &str = "openshell.ai/docker-instance-generation";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NameScheme {
    /// openshell-<name>-<id>
    Plain,
    /// openshell-<workspace>--<name>-<id> (as OpenShell main names them)
    Workspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GpuStyle {
    /// DeviceRequest {Driver: "cdi", DeviceIDs: ["nvidia.com/gpu=all"]}
    Cdi,
    /// DeviceRequest {Count: -1, Capabilities: [["gpu"]]} (`docker run --gpus all`)
    Gpus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchMode {
    /// one container list every poll interval, diffed (OpenShell's Docker driver)
    Poll,
    /// follow the engine's event stream, inspect on each event (OpenShell's Podman driver)
    Events,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: must be a positive number of seconds"));
    }
    Ok(value)
}

#[derive(Debug, Parser)]
#[command(
    name = "sbx-peer-driver",
    version,
    about = "The conformance suite's Rust peer driver: OpenShell's Docker driver's observable \
             behaviour on tonic/prost/tokio/bollard, served on a Unix socket"
)]
struct Args {
    /// Unix socket to serve openshell.compute.v1.ComputeDriver on (made 0600; only clients with
    /// this process's UID are accepted)
    #[arg(long, value_name = "PATH")]
    bind_socket: PathBuf,

    /// Engine URL (unix:///PATH or tcp://HOST:PORT) [default: $DOCKER_HOST, else
    /// unix:///var/run/docker.sock]
    #[arg(long, value_name = "URL")]
    docker_host: Option<String>,

    /// The sandbox namespace this driver manages (label openshell.ai/sandbox-namespace)
    #[arg(long, value_name = "NS")]
    namespace: String,

    /// Seconds between two polls (fractions allowed, e.g. 0.01); with --watch events, the first
    /// reconnection delay
    #[arg(long, value_name = "SECONDS", default_value = "2.0", value_parser = parse_seconds)]
    poll_interval: f64,

    /// Default sandbox image (for requests whose template names none)
    #[arg(long, value_name = "REF", default_value = "sbx-busybox:local")]
    image: String,

    /// Host file bind-mounted read-only at /opt/openshell/bin/openshell-sandbox in each
    /// container and used as its ENTRYPOINT (without it: the image's entrypoint)
    #[arg(long, value_name = "PATH")]
    supervisor: Option<PathBuf>,

    /// Folder of the sandbox token files (<DIR>/<sandbox-id>/token) [default:
    /// $XDG_STATE_HOME/sbx-peer-driver, else ~/.local/state/sbx-peer-driver]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Container network mode
    #[arg(long, value_name = "MODE", default_value = "none")]
    network: String,

    /// Container names
    #[arg(long, value_enum, default_value = "plain")]
    name_scheme: NameScheme,

    /// The device request of a sandbox that asks for a GPU
    #[arg(long, value_enum, default_value = "cdi")]
    gpu_style: GpuStyle,

    /// How sandbox changes are found
    #[arg(long, value_enum, default_value = "poll")]
    watch: WatchMode,

    /// Which engine's event stream --watch events follows (docker: GET /events; podman: GET
    /// /v5.0.0/libpod/events?stream=true)
    #[arg(long, value_enum, default_value = "docker")]
    engine: EngineKind,

    /// Report 12-character container ids as instance ids (as OpenShell's Podman driver does)
    #[arg(long)]
    short_ids: bool,

    /// Also put a fresh UUIDv4 generation label (openshell.ai/docker-instance-generation) on each
    /// created container. Off by default: OpenShell main sets none, and a suite run then stops
    /// at the first create (OWN-1); with it, the suite's later checks run too
    #[arg(long)]
    generation_label: bool,

    /// Seconds StopSandbox gives a container before it is killed (OpenShell: 10)
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stop_timeout: u32,
}

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sbx-peer-driver");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/sbx-peer-driver")
}

/// Bind the socket: its folder must exist or be creatable; a stale socket is replaced; the
/// socket is made 0600.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(parent)
                .map_err(|err| format!("create socket folder {}: {err}", parent.display()))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(|err| format!("chmod socket folder {}: {err}", parent.display()))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|err| format!("remove stale socket {}: {err}", path.display()))?
        }
        Ok(_) => return Err(format!("{} exists and is not a socket", path.display())),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|err| format!("bind {}: {err}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| format!("chmod {}: {err}", path.display()))?;
    Ok(listener)
}

/// Accepted connections whose peer has this process's UID; others are refused (closed).
fn same_uid_incoming(listener: UnixListener) -> impl tokio_stream::Stream<Item = Result<UnixStream, std::io::Error>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    futures_util::stream::unfold(listener, move |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == uid => return Some((Ok(stream), listener)),
                    Ok(cred) => log!("refused a client with uid {} (serving uid {uid} only)", cred.uid()),
                    Err(err) => log!("refused a client whose credentials cannot be read: {err}"),
                },
                Err(err) => {
                    log!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(args));
    // Background tasks (a held poll, an event stream) must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let url = args
        .docker_host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    let mut engine = match Engine::connect(&url, args.engine, &args.namespace) {
        Ok(engine) => engine,
        Err(err) => {
            log!("{err}");
            return 2;
        }
    };
    if let Some(supervisor) = &args.supervisor {
        if !supervisor.is_file() {
            log!("--supervisor {}: not a file", supervisor.display());
            return 2;
        }
    }
    let supervisor = args.supervisor.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let state_dir = if state_dir.is_absolute() {
        state_dir
    } else {
        std::env::current_dir().map(|d| d.join(&state_dir)).unwrap_or(state_dir)
    };
    log!(
        "starting {} on {} (engine {} [{:?}], namespace {}, watch {:?}, poll interval {} s, state {})",
        env!("CARGO_PKG_VERSION"),
        args.bind_socket.display(),
        engine.url(),
        args.engine,
        args.namespace,
        args.watch,
        args.poll_interval,
        state_dir.display()
    );
    engine.negotiate().await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let driver = Driver::new(
        engine,
        Config {
            namespace: args.namespace.clone(),
            image: args.image.clone(),
            supervisor,
            state_dir,
            network: args.network.clone(),
            name_scheme: args.name_scheme,
            gpu_style: args.gpu_style,
            short_ids: args.short_ids,
            generation_label: args.generation_label,
            poll_interval: Duration::from_secs_f64(args.poll_interval),
            stop_timeout: i32::try_from(args.stop_timeout).unwrap_or(i32::MAX),
        },
        stop_rx,
    );

    // Start-up reconcile, before the socket opens.
    match args.watch {
        WatchMode::Poll => {
            let seed = driver.seed().await;
            tokio::spawn(driver.clone().poll_loop(seed));
        }
        WatchMode::Events => {
            let opened = match driver.open_events("start-up reconcile").await {
                Ok(opened) => Some(opened),
                Err(err) => {
                    log!("start-up: could not follow engine events: {err}; retrying in the background");
                    None
                }
            };
            tokio::spawn(driver.clone().follow_events(opened));
        }
    }

    let listener = match bind_socket(&args.bind_socket) {
        Ok(listener) => listener,
        Err(err) => {
            log!("{err}");
            return 2;
        }
    };
    log!("serving on {}", args.bind_socket.display());

    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(ComputeDriverServer::new(driver))
        .serve_with_incoming_shutdown(same_uid_incoming(listener), async {
            let _ = signal_rx.await;
        });
    tokio::pin!(server);
    let code = tokio::select! {
        result = &mut server => match result {
            Ok(()) => 0,
            Err(err) => {
                log!("server failed: {err}");
                1
            }
        },
        name = shutdown_signal() => {
            log!("{name}: shutting down");
            // End the watch streams, then give in-flight RPCs a moment.
            let _ = stop_tx.send(true);
            let _ = signal_tx.send(());
            if tokio::time::timeout(Duration::from_millis(500), &mut server).await.is_err() {
                log!("in-flight requests did not finish within 0.5 s; exiting anyway");
            }
            0
        }
    };
    let _ = std::fs::remove_file(&args.bind_socket);
    log!("stopped");
    code
}
