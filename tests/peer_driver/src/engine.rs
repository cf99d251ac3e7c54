//! The engine client: bollard for the Docker Engine API (Docker, and Podman's Docker-compatible
//! API), plus a small hyper client for Podman's libpod event stream, which bollard does not
//! speak. Every request is logged on one line when it completes.

use std::collections::HashMap;
use std::time::Instant;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::log;
use crate::{LABEL_MANAGED_BY, LABEL_MANAGED_BY_VALUE, LABEL_SANDBOX_NAMESPACE};

/// Seconds before an engine request that is not a stream gives up (bollard's default).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// The API version used when the engine's cannot be asked (Docker 20.10's).
const FALLBACK_API: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };
/// Podman's libpod API prefix, as OpenShell's Podman driver uses it.
pub const LIBPOD_PREFIX: &str = "/v5.0.0/libpod";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Docker,
    Podman,
}

/// An engine answer that was not a success: the HTTP status where there was one.
#[derive(Debug, Clone)]
pub struct EngineError {
    pub status: Option<u16>,
    pub message: String,
}

impl EngineError {
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
    pub fn is_conflict(&self) -> bool {
        self.status == Some(409)
    }
    pub fn is_not_modified(&self) -> bool {
        self.status == Some(304)
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}: {}", self.message.trim()),
            None => write!(f, "{}", self.message.trim()),
        }
    }
}

impl From<bollard::errors::Error> for EngineError {
    fn from(err: bollard::errors::Error) -> Self {
        match err {
            bollard::errors::Error::DockerResponseServerError { status_code, message } => {
                EngineError { status: Some(status_code), message }
            }
            other => EngineError { status: None, message: other.to_string() },
        }
    }
}

/// One container event, from Docker's `/events` or Podman's libpod event stream.
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub action: String,
    pub container_id: String,
    pub attributes: HashMap<String, String>,
}

/// Where the engine is: a Unix socket or a TCP address.
#[derive(Debug, Clone)]
enum Endpoint {
    Unix(String),
    Tcp(String),
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: Endpoint,
    url: String,
    kind: EngineKind,
    namespace: String,
}

fn ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

fn outcome<T>(result: &Result<T, EngineError>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(err) => format!("error {err}"),
    }
}

/// The label filters of every list and event stream: this driver's containers in its namespace.
pub fn managed_filters(namespace: &str, extra: Option<String>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![
        format!("{LABEL_MANAGED_BY}={LABEL_MANAGED_BY_VALUE}"),
        format!("{LABEL_SANDBOX_NAMESPACE}={namespace}"),
    ];
    labels.extend(extra);
    HashMap::from([("label".to_string(), labels)])
}

impl Engine {
    /// Connect (lazily: nothing is sent) to `url`, `unix://PATH` or `tcp://HOST:PORT`.
    pub fn connect(url: &str, kind: EngineKind, namespace: &str) -> Result<Engine, String> {
        let (docker, endpoint) = if let Some(path) = url.strip_prefix("unix://") {
            let docker = Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &FALLBACK_API)
                .map_err(|err| format!("engine {url}: {err}"))?;
            (docker, Endpoint::Unix(path.to_string()))
        } else if let Some(addr) =
            url.strip_prefix("tcp://").or_else(|| url.strip_prefix("http://"))
        {
            let docker =
                Docker::connect_with_http(url, REQUEST_TIMEOUT_SECS, &FALLBACK_API)
                    .map_err(|err| format!("engine {url}: {err}"))?;
            (docker, Endpoint::Tcp(addr.trim_end_matches('/').to_string()))
        } else if url.starts_with('/') {
            return Engine::connect(&format!("unix://{url}"), kind, namespace);
        } else {
            return Err(format!(
                "engine {url}: unsupported URL (use unix:///PATH or tcp://HOST:PORT)"
            ));
        };
        Ok(Engine { docker, endpoint, url: url.to_string(), kind, namespace: namespace.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Ask the engine for its API version (`GET /version`) and use it when it is older than
    /// bollard's; keep the fallback (1.41) when the engine does not answer.
    pub async fn negotiate(&mut self) {
        let start = Instant::now();
        let attempt = self.docker.clone();
        match attempt.negotiate_version().await {
            Ok(docker) => {
                let v = docker.client_version();
                log!("engine GET /version -> ok, API {}.{} ({} ms)", v.major_version, v.minor_version, ms(start));
                self.docker = docker;
            }
            Err(err) => log!(
                "engine GET /version -> error {} ({} ms); using API {}.{}",
                EngineError::from(err), ms(start), FALLBACK_API.major_version, FALLBACK_API.minor_version
            ),
        }
    }

    /// `GET /containers/json?all=true&filters={"label":[managed-by, namespace(, extra)]}`: one
    /// request, whatever the number of containers.
    pub async fn list(&self, why: &str, extra: Option<String>) -> Result<Vec<ContainerSummary>, EngineError> {
        let filters = managed_filters(&self.namespace, extra);
        let start = Instant::now();
        let result = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .map_err(EngineError::from);
        let labels = filters.get("label").map(|v| v.join(",")).unwrap_or_default();
        match &result {
            Ok(list) => {
                let ids: Vec<String> = list
                    .iter()
                    .map(|c| c.id.as_deref().unwrap_or("?").chars().take(12).collect())
                    .collect();
                log!(
                    "engine GET /containers/json?all=true label={labels} ({why}) -> {} container(s) [{}] ({} ms)",
                    list.len(), ids.join(" "), ms(start)
                );
            }
            Err(err) => log!(
                "engine GET /containers/json?all=true label={labels} ({why}) -> error {err} ({} ms)",
                ms(start)
            ),
        }
        result
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        let start = Instant::now();
        let result = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(EngineError::from);
        log!("engine GET /containers/{}/json -> {} ({} ms)", short(id), outcome(&result), ms(start));
        result
    }

    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, EngineError> {
        let start = Instant::now();
        let result = self
            .docker
            .create_container(Some(CreateContainerOptionsBuilder::default().name(name).build()), body)
            .await
            .map(|r| r.id)
            .map_err(EngineError::from);
        match &result {
            Ok(id) => log!("engine POST /containers/create?name={name} -> {} ({} ms)", short(id), ms(start)),
            Err(err) => log!("engine POST /containers/create?name={name} -> error {err} ({} ms)", ms(start)),
        }
        result
    }

    pub async fn start(&self, id: &str) -> Result<(), EngineError> {
        let start = Instant::now();
        let result = self.docker.start_container(id, None).await.map_err(EngineError::from);
        log!("engine POST /containers/{}/start -> {} ({} ms)", short(id), outcome(&result), ms(start));
        result
    }

    pub async fn stop(&self, id: &str, timeout_secs: i32) -> Result<(), EngineError> {
        let start = Instant::now();
        let result = self
            .docker
            .stop_container(id, Some(StopContainerOptionsBuilder::default().t(timeout_secs).build()))
            .await
            .map_err(EngineError::from);
        log!("engine POST /containers/{}/stop?t={timeout_secs} -> {} ({} ms)", short(id), outcome(&result), ms(start));
        result
    }

    pub async fn remove_force(&self, id: &str) -> Result<(), EngineError> {
        let start = Instant::now();
        let result = self
            .docker
            .remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).build()))
            .await
            .map_err(EngineError::from);
        log!("engine DELETE /containers/{}?force=true -> {} ({} ms)", short(id), outcome(&result), ms(start));
        result
    }

    /// Open the engine's container event stream (this driver's containers in its namespace) and
    /// forward each event into the returned channel until the stream ends. `Ok` once the engine
    /// accepted the request; the channel closes when the stream ends or fails.
    pub async fn events(&self) -> Result<mpsc::Receiver<Result<ContainerEvent, EngineError>>, EngineError> {
        self.open_events().await
    }

    /// Docker: `GET /events?filters={"label":[...],"type":["container"]}`; Podman:
    /// `GET /v5.0.0/libpod/events?stream=true&filters=...` (the endpoint OpenShell's Podman driver
    /// follows). Both answer newline-delimited JSON events of one shape.
    async fn open_events(&self) -> Result<mpsc::Receiver<Result<ContainerEvent, EngineError>>, EngineError> {
        let mut filters = managed_filters(&self.namespace, None);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let encoded = percent_encode(&serde_json::to_string(&filters).unwrap_or_default());
        let (target, shown) = match self.kind {
            EngineKind::Docker => (format!("/events?filters={encoded}"), "/events".to_string()),
            EngineKind::Podman => (
                format!("{LIBPOD_PREFIX}/events?stream=true&filters={encoded}"),
                format!("{LIBPOD_PREFIX}/events?stream=true"),
            ),
        };
        let labels = filters["label"].join(",");
        let start = Instant::now();
        let body = match self.raw_stream(&target).await {
            Ok(body) => {
                log!("engine GET {shown} type=container label={labels} -> streaming ({} ms)", ms(start));
                body
            }
            Err(err) => {
                log!("engine GET {shown} type=container label={labels} -> error {err} ({} ms)", ms(start));
                return Err(err);
            }
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut body = body;
            let mut buffer: Vec<u8> = Vec::new();
            loop {
                let frame = match body.frame().await {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        let _ = tx.send(Err(EngineError { status: None, message: err.to_string() })).await;
                        return;
                    }
                    None => return,
                };
                if let Some(data) = frame.data_ref() {
                    buffer.extend_from_slice(data);
                }
                while let Some(pos) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let item = match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(value) => match json_event(&value) {
                            Some(event) => Ok(event),
                            None => continue,
                        },
                        Err(err) => Err(EngineError { status: None, message: format!("bad event {text:?}: {err}") }),
                    };
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// A GET whose answer is a stream, over a connection of its own (hyper, HTTP/1.1).
    async fn raw_stream(&self, target: &str) -> Result<hyper::body::Incoming, EngineError> {
        use hyper_util::rt::TokioIo;
        let io_err = |err: std::io::Error| EngineError { status: None, message: err.to_string() };
        let http_err = |err: hyper::Error| EngineError { status: None, message: err.to_string() };
        let request = hyper::Request::get(target)
            .header("Host", "d")
            .body(http_body_util::Empty::<bytes_compat::Bytes>::new())
            .map_err(|err| EngineError { status: None, message: err.to_string() })?;
        let response = match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(io_err)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
                tokio::spawn(conn);
                sender.send_request(request).await.map_err(http_err)?
            }
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(io_err)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
                tokio::spawn(conn);
                sender.send_request(request).await.map_err(http_err)?
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(EngineError {
                status: Some(status.as_u16()),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(response.into_body())
    }
}

/// `hyper`'s body type needs `bytes::Bytes`; re-exported through http-body-util's dependency.
mod bytes_compat {
    pub use hyper::body::Bytes;
}

/// One event line (`{"Type":"container","Action":"destroy","Actor":{"ID":..,"Attributes":{..}}}`;
/// Docker's and libpod's have this shape).
fn json_event(value: &serde_json::Value) -> Option<ContainerEvent> {
    if value.get("Type").and_then(|t| t.as_str()).is_some_and(|t| t != "container") {
        return None;
    }
    let action = value.get("Action").or_else(|| value.get("Status"))?.as_str()?.to_string();
    let actor = value.get("Actor")?;
    let container_id = actor.get("ID").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let attributes = actor
        .get("Attributes")
        .and_then(|v| v.as_object())
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Some(ContainerEvent { action, container_id, attributes })
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn short(id: &str) -> String {
    id.chars().take(12).collect()
}
