//! The ComputeDriver service: RPCs, the poll loop (`--watch poll`) and the event follower
//! (`--watch events`). No lock is ever held across an engine request: the watch state of the
//! background task is its own, watchers get events through a broadcast channel, and every RPC
//! asks the engine itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, ContainerSummary, DeviceRequest, HostConfig};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::engine::{ContainerEvent, Engine, EngineError};
use crate::pb::compute_driver_server::ComputeDriver;
use crate::pb::*;
use crate::snapshot::{self, by_sandbox, deleted_event, from_inspect, from_summary, sandbox_event};
use crate::{log, GpuStyle, NameScheme};
use crate::{
    LABEL_MANAGED_BY, LABEL_MANAGED_BY_VALUE, LABEL_SANDBOX_ID, LABEL_SANDBOX_NAME,
    LABEL_GENERATION, LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_WORKSPACE,
};

/// Where the supervisor is mounted in each container (and its entrypoint), as in OpenShell.
pub const SUPERVISOR_MOUNT: &str = "/opt/openshell/bin/openshell-sandbox";
/// Where the sandbox's token folder is mounted; the token is the file `token` in it.
pub const TOKEN_MOUNT: &str = "/etc/openshell/auth";
const TOKEN_FILE: &str = "token";
/// The command of a sandbox whose request names none.
const DEFAULT_COMMAND: [&str; 2] = ["sleep", "2147483647"];
/// The longest wait between polls (or event-stream reconnections) while the engine fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const WATCH_BUFFER: usize = 1024;

pub struct Config {
    pub namespace: String,
    pub image: String,
    pub supervisor: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub network: String,
    pub name_scheme: NameScheme,
    pub gpu_style: GpuStyle,
    pub short_ids: bool,
    pub generation_label: bool,
    pub poll_interval: Duration,
    pub stop_timeout: i32,
}

#[derive(Clone)]
pub struct Driver {
    engine: Engine,
    cfg: Arc<Config>,
    events: broadcast::Sender<WatchSandboxesEvent>,
    shutdown: watch::Receiver<bool>,
    watchers: Arc<AtomicU64>,
}

type WatchStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchSandboxesEvent, Status>> + Send + 'static>>;

/// What the event follower starts with when the event stream was opened (and the engine
/// listed) before the socket.
pub type OpenedEvents = (mpsc::Receiver<Result<ContainerEvent, EngineError>>, Vec<ContainerSummary>);

fn engine_status(what: &str, err: EngineError) -> Status {
    match err.status {
        Some(404) => Status::not_found(format!("{what}: {err}")),
        Some(409) => Status::already_exists(format!("{what}: {err}")),
        None => Status::unavailable(format!("{what}: engine unreachable: {err}")),
        _ => Status::internal(format!("{what}: {err}")),
    }
}

/// Docker container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`: anything else becomes `-`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// A random UUIDv4 (from the kernel's random source).
fn uuid_v4() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // No /dev/urandom: the clock (unique enough for a test driver, not unguessable).
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = now.as_nanos().to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A sandbox id must name one folder under the state dir.
fn check_id_is_path_component(id: &str) -> Result<(), Status> {
    if id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(Status::invalid_argument(format!("sandbox.id {id:?} cannot name a state folder")));
    }
    Ok(())
}

fn validate_request(sandbox: Option<&DriverSandbox>) -> Result<&DriverSandbox, Status> {
    let sandbox = sandbox.ok_or_else(|| Status::invalid_argument("sandbox is required"))?;
    if sandbox.id.trim().is_empty() {
        return Err(Status::invalid_argument("sandbox.id is required"));
    }
    if sandbox.name.trim().is_empty() {
        return Err(Status::invalid_argument("sandbox.name is required"));
    }
    check_id_is_path_component(&sandbox.id)?;
    Ok(sandbox)
}

fn has_token(sandbox: &DriverSandbox) -> bool {
    sandbox.spec.as_ref().is_some_and(|spec| !spec.sandbox_token.trim().is_empty())
}

fn require_identifier(sandbox_id: &str, sandbox_name: &str) -> Result<(), Status> {
    if sandbox_id.is_empty() && sandbox_name.is_empty() {
        return Err(Status::invalid_argument("sandbox_id or sandbox_name is required"));
    }
    Ok(())
}

/// The label filter that finds a sandbox's containers: by id, else by name.
fn identity_filter(sandbox_id: &str, sandbox_name: &str) -> String {
    if !sandbox_id.is_empty() {
        format!("{LABEL_SANDBOX_ID}={sandbox_id}")
    } else {
        format!("{LABEL_SANDBOX_NAME}={sandbox_name}")
    }
}

/// Log one RPC's outcome on one line.
fn answer<T>(rpc: &str, detail: &str, start: Instant, result: Result<T, Status>) -> Result<Response<T>, Status> {
    let took = start.elapsed().as_millis();
    match &result {
        Ok(_) => log!("rpc {rpc} {detail} -> OK ({took} ms)"),
        Err(status) => log!("rpc {rpc} {detail} -> {:?}: {} ({took} ms)", status.code(), status.message()),
    }
    result.map(Response::new)
}

impl Driver {
    pub fn new(engine: Engine, cfg: Config, shutdown: watch::Receiver<bool>) -> Driver {
        Driver {
            engine,
            cfg: Arc::new(cfg),
            events: broadcast::channel(WATCH_BUFFER).0,
            shutdown,
            watchers: Arc::new(AtomicU64::new(0)),
        }
    }

    fn publish(&self, event: WatchSandboxesEvent) {
        let receivers = self.events.receiver_count();
        log!("watch -> {} ({receivers} watcher(s))", snapshot::describe(&event));
        let _ = self.events.send(event);
    }

    fn list_all(&self, why: &str) -> impl std::future::Future<Output = Result<Vec<ContainerSummary>, EngineError>> + '_ {
        let why = why.to_string();
        async move { self.engine.list(&why, None).await }
    }

    /// The containers of one sandbox in this namespace, in the engine's list order.
    async fn find(&self, why: &str, sandbox_id: &str, sandbox_name: &str) -> Result<Vec<ContainerSummary>, Status> {
        let list = self
            .engine
            .list(why, Some(identity_filter(sandbox_id, sandbox_name)))
            .await
            .map_err(|err| engine_status("list sandbox containers", err))?;
        Ok(list
            .into_iter()
            .filter(|c| {
                let Some(labels) = c.labels.as_ref() else { return false };
                labels.get(LABEL_SANDBOX_NAMESPACE) == Some(&self.cfg.namespace)
                    && (sandbox_id.is_empty() || labels.get(LABEL_SANDBOX_ID).map(String::as_str) == Some(sandbox_id))
                    && (sandbox_name.is_empty() || labels.get(LABEL_SANDBOX_NAME).map(String::as_str) == Some(sandbox_name))
            })
            .collect())
    }

    /// After a create, stop or start: the sandbox as its first listed container shows it (as
    /// OpenShell publishes it), to every watcher.
    async fn publish_current(&self, why: &str, sandbox_id: &str, sandbox_name: &str) {
        match self.find(why, sandbox_id, sandbox_name).await {
            Ok(found) => {
                if let Some(sandbox) = found.first().and_then(|c| from_summary(c, self.cfg.short_ids)) {
                    self.publish(sandbox_event(sandbox));
                }
            }
            Err(status) => log!("could not publish sandbox {sandbox_id}: {}", status.message()),
        }
    }

    // -- state folder ---------------------------------------------------------------------------

    fn token_dir(&self, sandbox_id: &str) -> PathBuf {
        self.cfg.state_dir.join(sandbox_id)
    }

    fn write_token(&self, sandbox_id: &str, token: &str) -> std::io::Result<PathBuf> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.cfg.state_dir)?;
        let dir = self.token_dir(sandbox_id);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(TOKEN_FILE);
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(dir)
    }

    fn remove_token(&self, sandbox_id: &str) {
        if check_id_is_path_component(sandbox_id).is_err() || sandbox_id.is_empty() {
            return;
        }
        let dir = self.token_dir(sandbox_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => log!("removed token folder {}", dir.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => log!("could not remove token folder {}: {err}", dir.display()),
        }
    }

    // -- container shape ------------------------------------------------------------------------

    fn container_name(&self, sandbox: &DriverSandbox) -> String {
        let (name, id) = (sanitize(&sandbox.name), sanitize(&sandbox.id));
        match self.cfg.name_scheme {
            NameScheme::Plain => format!("openshell-{name}-{id}"),
            NameScheme::Workspace => {
                let workspace = if sandbox.workspace.is_empty() { "default" } else { &sandbox.workspace };
                format!("openshell-{}--{name}-{id}", sanitize(workspace))
            }
        }
    }

    fn create_body(&self, sandbox: &DriverSandbox, token_dir: &Path) -> ContainerCreateBody {
        let spec = sandbox.spec.clone().unwrap_or_default();
        let template = spec.template.clone().unwrap_or_default();
        let image = if template.image.trim().is_empty() { self.cfg.image.clone() } else { template.image.clone() };
        let workspace = if sandbox.workspace.is_empty() { "default".to_string() } else { sandbox.workspace.clone() };

        let mut labels = template.labels.clone();
        labels.insert(LABEL_MANAGED_BY.to_string(), LABEL_MANAGED_BY_VALUE.to_string());
        labels.insert(LABEL_SANDBOX_ID.to_string(), sandbox.id.clone());
        labels.insert(LABEL_SANDBOX_NAME.to_string(), sandbox.name.clone());
        labels.insert(LABEL_SANDBOX_NAMESPACE.to_string(), self.cfg.namespace.clone());
        labels.insert(LABEL_SANDBOX_WORKSPACE.to_string(), workspace);
        if self.cfg.generation_label {
            labels.insert(LABEL_GENERATION.to_string(), uuid_v4());
        } else {
            labels.remove(LABEL_GENERATION);
        }

        // Template environment, then the spec's, then the keys the driver owns.
        let mut env: BTreeMap<String, String> = template.environment.clone().into_iter().collect();
        env.extend(spec.environment.clone());
        env.insert("OPENSHELL_SANDBOX_ID".to_string(), sandbox.id.clone());
        env.insert("OPENSHELL_SANDBOX".to_string(), sandbox.name.clone());
        env.insert("OPENSHELL_SANDBOX_TOKEN_FILE".to_string(), format!("{TOKEN_MOUNT}/{TOKEN_FILE}"));

        let mut binds = Vec::new();
        if let Some(supervisor) = &self.cfg.supervisor {
            binds.push(format!("{}:{SUPERVISOR_MOUNT}:ro,z", supervisor.display()));
        }
        binds.push(format!("{}:{TOKEN_MOUNT}:ro,z", token_dir.display()));

        let command = if spec.command.is_empty() {
            DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect()
        } else {
            spec.command.clone()
        };
        let gpu = spec.resource_requirements.as_ref().and_then(|r| r.gpu.as_ref()).is_some();
        let device_requests = gpu.then(|| {
            vec![match self.cfg.gpu_style {
                GpuStyle::Cdi => DeviceRequest {
                    driver: Some("cdi".to_string()),
                    device_ids: Some(vec!["nvidia.com/gpu=all".to_string()]),
                    ..Default::default()
                },
                GpuStyle::Gpus => DeviceRequest {
                    count: Some(-1),
                    capabilities: Some(vec![vec!["gpu".to_string()]]),
                    ..Default::default()
                },
            }]
        });

        ContainerCreateBody {
            image: Some(image),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            cmd: Some(command),
            entrypoint: self.cfg.supervisor.as_ref().map(|_| vec![SUPERVISOR_MOUNT.to_string()]),
            tty: Some(spec.tty),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(self.cfg.network.clone()),
                device_requests,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    // -- RPC bodies -----------------------------------------------------------------------------

    async fn create(&self, sandbox: &DriverSandbox) -> Result<CreateSandboxResponse, Status> {
        if !has_token(sandbox) {
            return Err(Status::failed_precondition(
                "sandboxes require a sandbox_token (the gateway's per-sandbox secret)",
            ));
        }
        if !self.find("CreateSandbox: exists?", &sandbox.id, "").await?.is_empty() {
            return Err(Status::already_exists("sandbox already exists"));
        }
        let token = sandbox.spec.as_ref().map(|s| s.sandbox_token.trim().to_string()).unwrap_or_default();
        let token_dir = self
            .write_token(&sandbox.id, &token)
            .map_err(|err| Status::internal(format!("write sandbox token: {err}")))?;
        let name = self.container_name(sandbox);
        let body = self.create_body(sandbox, &token_dir);
        self.publish(snapshot::platform_event(&sandbox.id, "Normal", "Scheduled", format!("Docker sandbox accepted for image {:?}", body.image.clone().unwrap_or_default())));
        let id = match self.engine.create(&name, body).await {
            Ok(id) => id,
            Err(err) => {
                self.remove_token(&sandbox.id);
                if err.is_conflict() {
                    return Err(Status::already_exists(format!("container {name} already exists: {err}")));
                }
                if err.is_not_found() {
                    return Err(Status::failed_precondition(format!("create container {name}: {err}")));
                }
                return Err(engine_status("create container", err));
            }
        };
        self.publish(snapshot::platform_event(&sandbox.id, "Normal", "Created", format!("Created Docker container {name:?}")));
        if let Err(err) = self.engine.start(&id).await {
            if let Err(cleanup) = self.engine.remove_force(&id).await {
                log!("could not remove container {name} after its failed start: {cleanup}");
            }
            self.remove_token(&sandbox.id);
            return Err(Status::internal(format!("start container {name}: {err}")));
        }
        self.publish(snapshot::platform_event(&sandbox.id, "Normal", "Started", format!("Started Docker container {name:?}")));
        self.publish_current("CreateSandbox: publish", &sandbox.id, "").await;
        Ok(CreateSandboxResponse {})
    }

    async fn get(&self, sandbox_id: &str, sandbox_name: &str) -> Result<GetSandboxResponse, Status> {
        require_identifier(sandbox_id, sandbox_name)?;
        // OpenShell's get answers with the FIRST listed container of the sandbox.
        let found = self.find("GetSandbox", sandbox_id, sandbox_name).await?;
        let sandbox = found
            .first()
            .and_then(|c| from_summary(c, self.cfg.short_ids))
            .ok_or_else(|| Status::not_found("sandbox not found"))?;
        Ok(GetSandboxResponse { sandbox: Some(sandbox) })
    }

    async fn list(&self) -> Result<ListSandboxesResponse, Status> {
        let list = self.list_all("ListSandboxes").await.map_err(|err| engine_status("list sandboxes", err))?;
        Ok(ListSandboxesResponse { sandboxes: by_sandbox(&list, self.cfg.short_ids).into_values().collect() })
    }

    async fn stop(&self, sandbox_id: &str, sandbox_name: &str) -> Result<StopSandboxResponse, Status> {
        require_identifier(sandbox_id, sandbox_name)?;
        let found = self.find("StopSandbox", sandbox_id, sandbox_name).await?;
        let target = found.first().and_then(|c| c.id.clone()).ok_or_else(|| Status::not_found("sandbox not found"))?;
        match self.engine.stop(&target, self.cfg.stop_timeout).await {
            Ok(()) => {}
            Err(err) if err.is_not_modified() => {}
            Err(err) if err.is_not_found() => return Err(Status::not_found("sandbox not found")),
            Err(err) => return Err(engine_status("stop container", err)),
        }
        self.publish_current("StopSandbox: publish", sandbox_id, sandbox_name).await;
        Ok(StopSandboxResponse {})
    }

    async fn start(&self, sandbox_id: &str, sandbox_name: &str) -> Result<StartSandboxResponse, Status> {
        require_identifier(sandbox_id, sandbox_name)?;
        let found = self.find("StartSandbox", sandbox_id, sandbox_name).await?;
        let container = found.first().ok_or_else(|| Status::not_found("sandbox not found"))?;
        let target = container.id.clone().ok_or_else(|| Status::not_found("sandbox container has no id"))?;
        let state = container.state.map(|s| s.to_string()).unwrap_or_default();
        if state == "exited" || state == "created" {
            match self.engine.start(&target).await {
                Ok(()) => {}
                Err(err) if err.is_not_modified() => {}
                Err(err) if err.is_not_found() => return Err(Status::not_found("sandbox not found")),
                Err(err) => return Err(engine_status("start container", err)),
            }
        }
        self.publish_current("StartSandbox: publish", sandbox_id, sandbox_name).await;
        Ok(StartSandboxResponse {})
    }

    async fn delete(&self, sandbox_id: &str, sandbox_name: &str) -> Result<DeleteSandboxResponse, Status> {
        require_identifier(sandbox_id, sandbox_name)?;
        let found = self.find("DeleteSandbox", sandbox_id, sandbox_name).await?;
        let mut ids: BTreeSet<String> = found
            .iter()
            .filter_map(|c| c.labels.as_ref().and_then(|l| l.get(LABEL_SANDBOX_ID)).cloned())
            .collect();
        if !sandbox_id.is_empty() {
            ids.insert(sandbox_id.to_string());
        }
        let mut deleted = false;
        for container in &found {
            let Some(id) = container.id.as_deref() else { continue };
            match self.engine.remove_force(id).await {
                Ok(()) => deleted = true,
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(engine_status("remove container", err)),
            }
        }
        for id in &ids {
            self.remove_token(id);
        }
        if deleted {
            for id in ids {
                self.publish(deleted_event(id));
            }
        }
        Ok(DeleteSandboxResponse { deleted })
    }

    async fn watch(&self) -> Result<(WatchStream, usize, u64), Status> {
        // Subscribe before listing, so nothing published meanwhile is missed.
        let mut rx = self.events.subscribe();
        let number = self.watchers.fetch_add(1, Ordering::SeqCst) + 1;
        let list = self
            .list_all(&format!("WatchSandboxes #{number}: initial snapshot"))
            .await
            .map_err(|err| engine_status("list sandboxes for the initial snapshot", err))?;
        let initial: Vec<DriverSandbox> = by_sandbox(&list, self.cfg.short_ids).into_values().collect();
        let count = initial.len();
        let (tx, out) = mpsc::channel::<Result<WatchSandboxesEvent, Status>>(WATCH_BUFFER);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            for sandbox in initial {
                if tx.send(Ok(sandbox_event(sandbox))).await.is_err() {
                    log!("watcher #{number} closed");
                    return;
                }
            }
            loop {
                tokio::select! {
                    received = rx.recv() => match received {
                        Ok(event) => {
                            if tx.send(Ok(event)).await.is_err() {
                                log!("watcher #{number} closed");
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => log!("watcher #{number} missed {n} event(s)"),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tx.closed() => {
                        log!("watcher #{number} closed");
                        return;
                    }
                    _ = shutdown.changed() => return,
                }
            }
        });
        Ok((Box::pin(ReceiverStream::new(out)), count, number))
    }

    // -- background: poll loop ------------------------------------------------------------------

    /// The start-up reconcile: one list before the socket opens (errors are logged, and the
    /// loop starts from nothing).
    pub async fn seed(&self) -> BTreeMap<String, DriverSandbox> {
        match self.list_all("start-up reconcile").await {
            Ok(list) => by_sandbox(&list, self.cfg.short_ids),
            Err(err) => {
                log!("start-up reconcile failed: {err}; polling from an empty state");
                BTreeMap::new()
            }
        }
    }

    /// Every poll interval exactly one container list, diffed against the previous one: a
    /// sandbox event for each snapshot that changed, Deleted for each id that disappeared.
    /// Engine errors back off (doubling, up to 30 s).
    pub async fn poll_loop(self, mut previous: BTreeMap<String, DriverSandbox>) {
        let interval = self.cfg.poll_interval;
        let mut backoff = interval;
        let mut poll: u64 = 0;
        loop {
            tokio::time::sleep(backoff).await;
            poll += 1;
            match self.list_all(&format!("poll {poll}")).await {
                Ok(list) => {
                    let current = by_sandbox(&list, self.cfg.short_ids);
                    for (id, sandbox) in &current {
                        if previous.get(id) != Some(sandbox) {
                            self.publish(sandbox_event(sandbox.clone()));
                        }
                    }
                    for id in previous.keys() {
                        if !current.contains_key(id) {
                            self.publish(deleted_event(id.clone()));
                        }
                    }
                    previous = current;
                    backoff = interval;
                }
                Err(err) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    log!("poll {poll} failed: {err}; next poll in {:.2} s", backoff.as_secs_f64());
                }
            }
        }
    }

    // -- background: event follower -------------------------------------------------------------

    /// Open the engine's event stream, then list (so no event between the two is missed).
    pub async fn open_events(&self, why: &str) -> Result<OpenedEvents, EngineError> {
        let rx = self.engine.events().await?;
        let list = self.list_all(why).await?;
        Ok((rx, list))
    }

    /// `--watch events`: follow the engine's container events; each one is inspected and
    /// updates the sandbox's snapshot (the container with the latest event wins); the removal of
    /// a sandbox's last container emits Deleted. When the stream ends: reconnect (backing off),
    /// list once and publish what changed meanwhile. No polling list.
    pub async fn follow_events(self, mut opened: Option<OpenedEvents>) {
        let interval = self.cfg.poll_interval;
        let mut backoff = interval;
        let mut tracked: HashMap<String, (u64, DriverSandbox)> = HashMap::new();
        let mut current: BTreeMap<String, DriverSandbox> = BTreeMap::new();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        let mut seq: u64 = 0;
        loop {
            let (mut rx, list) = match opened.take() {
                Some(opened) => opened,
                None => match self.open_events("event stream (re)opened: resync").await {
                    Ok(opened) => opened,
                    Err(err) => {
                        log!("could not follow engine events: {err}; retrying in {:.2} s", backoff.as_secs_f64());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            backoff = interval;
            tracked.clear();
            for container in &list {
                if let (Some(id), Some(sandbox)) = (container.id.clone(), from_summary(container, self.cfg.short_ids)) {
                    seq += 1;
                    tracked.insert(id, (seq, sandbox));
                }
            }
            let next = winners(&tracked);
            for (id, sandbox) in &next {
                if current.get(id) != Some(sandbox) {
                    self.publish(sandbox_event(sandbox.clone()));
                }
            }
            for id in current.keys() {
                if !next.contains_key(id) {
                    self.publish(deleted_event(id.clone()));
                    deleted.insert(id.clone());
                }
            }
            deleted.retain(|id| !next.contains_key(id));
            current = next;
            while let Some(item) = rx.recv().await {
                match item {
                    Ok(event) => self.apply_event(event, &mut tracked, &mut current, &mut deleted, &mut seq).await,
                    Err(err) => {
                        log!("engine event stream failed: {err}");
                        break;
                    }
                }
            }
            log!("engine event stream ended; reconnecting in {:.2} s", backoff.as_secs_f64());
            tokio::time::sleep(backoff).await;
        }
    }

    async fn apply_event(
        &self,
        event: ContainerEvent,
        tracked: &mut HashMap<String, (u64, DriverSandbox)>,
        current: &mut BTreeMap<String, DriverSandbox>,
        deleted: &mut BTreeSet<String>,
        seq: &mut u64,
    ) {
        let attrs = &event.attributes;
        let ours = attrs.get(LABEL_MANAGED_BY).map(String::as_str) == Some(LABEL_MANAGED_BY_VALUE)
            && attrs.get(LABEL_SANDBOX_NAMESPACE) == Some(&self.cfg.namespace);
        let Some(sandbox_id) = attrs.get(LABEL_SANDBOX_ID).filter(|id| !id.is_empty() && ours).cloned() else {
            return;
        };
        let action = event.action.split(':').next().unwrap_or_default().trim().to_string();
        let cid = event.container_id.clone();
        log!("engine event {action} {} (sandbox {sandbox_id})", crate::engine::short(&cid));
        match action.as_str() {
            "destroy" | "remove" => {
                tracked.remove(&cid);
            }
            "create" | "init" | "start" | "stop" | "die" | "died" | "kill" | "pause" | "unpause"
            | "restart" | "rename" | "update" | "oom" | "health_status" => match self.engine.inspect(&cid).await {
                Ok(inspect) => match from_inspect(&inspect, self.cfg.short_ids) {
                    Some(sandbox) => {
                        *seq += 1;
                        tracked.insert(cid.clone(), (*seq, sandbox));
                    }
                    None => {
                        tracked.remove(&cid);
                    }
                },
                Err(err) if err.is_not_found() => {
                    tracked.remove(&cid);
                }
                Err(err) => {
                    log!("inspect after {action} failed: {err}");
                    return;
                }
            },
            _ => return,
        }
        let winner = tracked
            .values()
            .filter(|(_, s)| s.id == sandbox_id)
            .max_by_key(|(n, _)| *n)
            .map(|(_, s)| s.clone());
        match winner {
            Some(sandbox) => {
                deleted.remove(&sandbox_id);
                if current.get(&sandbox_id) != Some(&sandbox) {
                    current.insert(sandbox_id, sandbox.clone());
                    self.publish(sandbox_event(sandbox));
                }
            }
            None => {
                // The sandbox's last container is gone. Watchers may know the sandbox from an
                // RPC's snapshot even when this task never saw it (events lag behind: Podman's
                // file event log delivers a create after the container was removed), so Deleted
                // goes out once per disappearance, whether or not it was in `current`.
                current.remove(&sandbox_id);
                if deleted.insert(sandbox_id.clone()) {
                    self.publish(deleted_event(sandbox_id));
                }
            }
        }
    }
}

/// Per sandbox, the container seen last (highest sequence number).
fn winners(tracked: &HashMap<String, (u64, DriverSandbox)>) -> BTreeMap<String, DriverSandbox> {
    let mut best: BTreeMap<String, (u64, DriverSandbox)> = BTreeMap::new();
    for (n, sandbox) in tracked.values() {
        if best.get(&sandbox.id).is_none_or(|(m, _)| n > m) {
            best.insert(sandbox.id.clone(), (*n, sandbox.clone()));
        }
    }
    best.into_iter().map(|(id, (_, s))| (id, s)).collect()
}

#[tonic::async_trait]
impl ComputeDriver for Driver {
    type WatchSandboxesStream = WatchStream;

    async fn get_capabilities(&self, _request: Request<GetCapabilitiesRequest>) -> Result<Response<GetCapabilitiesResponse>, Status> {
        let start = Instant::now();
        let reply = GetCapabilitiesResponse {
            driver_name: "sbx-peer-driver".to_string(),
            driver_version: env!("CARGO_PKG_VERSION").to_string(),
            default_image: self.cfg.image.clone(),
            gateway_manages_lifecycle: true,
            supports_sandbox_authentication: false,
            driver_reports_runtime_readiness: false,
        };
        answer("GetCapabilities", "", start, Ok(reply))
    }

    async fn validate_sandbox_create(&self, request: Request<ValidateSandboxCreateRequest>) -> Result<Response<ValidateSandboxCreateResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        let detail = request.sandbox.as_ref().map(|s| format!("id={}", s.id)).unwrap_or_default();
        let result = validate_request(request.sandbox.as_ref()).and_then(|sandbox| {
            if has_token(sandbox) {
                Ok(ValidateSandboxCreateResponse {})
            } else {
                Err(Status::invalid_argument("sandbox.spec.sandbox_token is required"))
            }
        });
        answer("ValidateSandboxCreate", &detail, start, result)
    }

    async fn get_sandbox(&self, request: Request<GetSandboxRequest>) -> Result<Response<GetSandboxResponse>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self.get(&r.sandbox_id, &r.sandbox_name).await;
        answer("GetSandbox", &format!("id={} name={}", r.sandbox_id, r.sandbox_name), start, result)
    }

    async fn list_sandboxes(&self, _request: Request<ListSandboxesRequest>) -> Result<Response<ListSandboxesResponse>, Status> {
        let start = Instant::now();
        let result = self.list().await;
        let detail = result.as_ref().map(|r| format!("({} sandbox(es))", r.sandboxes.len())).unwrap_or_default();
        answer("ListSandboxes", &detail, start, result)
    }

    async fn create_sandbox(&self, request: Request<CreateSandboxRequest>) -> Result<Response<CreateSandboxResponse>, Status> {
        let start = Instant::now();
        let request = request.into_inner();
        let detail = request.sandbox.as_ref().map(|s| format!("id={} name={}", s.id, s.name)).unwrap_or_default();
        let result = match validate_request(request.sandbox.as_ref()) {
            Ok(sandbox) => self.create(sandbox).await,
            Err(status) => Err(status),
        };
        answer("CreateSandbox", &detail, start, result)
    }

    async fn stop_sandbox(&self, request: Request<StopSandboxRequest>) -> Result<Response<StopSandboxResponse>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self.stop(&r.sandbox_id, &r.sandbox_name).await;
        answer("StopSandbox", &format!("id={} name={}", r.sandbox_id, r.sandbox_name), start, result)
    }

    async fn start_sandbox(&self, request: Request<StartSandboxRequest>) -> Result<Response<StartSandboxResponse>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self.start(&r.sandbox_id, &r.sandbox_name).await;
        answer("StartSandbox", &format!("id={} name={}", r.sandbox_id, r.sandbox_name), start, result)
    }

    async fn delete_sandbox(&self, request: Request<DeleteSandboxRequest>) -> Result<Response<DeleteSandboxResponse>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self.delete(&r.sandbox_id, &r.sandbox_name).await;
        let detail = format!(
            "id={} name={}{}",
            r.sandbox_id,
            r.sandbox_name,
            result.as_ref().map(|d| format!(" (deleted={})", d.deleted)).unwrap_or_default()
        );
        answer("DeleteSandbox", &detail, start, result)
    }

    async fn watch_sandboxes(&self, _request: Request<WatchSandboxesRequest>) -> Result<Response<Self::WatchSandboxesStream>, Status> {
        let start = Instant::now();
        match self.watch().await {
            Ok((stream, count, number)) => {
                answer("WatchSandboxes", &format!("#{number} ({count} sandbox(es) in the initial snapshot)"), start, Ok(stream))
            }
            Err(status) => answer("WatchSandboxes", "", start, Err(status)),
        }
    }
}
