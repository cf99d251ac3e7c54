//! Containers as the watch protocol's sandboxes: OpenShell's Docker driver's mapping, written
//! from its observable behaviour (identity from the labels, the Ready condition from the
//! container's state, one sandbox per sandbox-id label where the container listed last wins).

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerInspectResponse, ContainerSummary};

use crate::pb::{
    watch_sandboxes_event, DriverCondition, DriverPlatformEvent, DriverSandbox, DriverSandboxStatus,
    WatchSandboxesDeletedEvent, WatchSandboxesEvent, WatchSandboxesPlatformEvent,
    WatchSandboxesSandboxEvent,
};
use crate::{LABEL_SANDBOX_ID, LABEL_SANDBOX_NAME, LABEL_SANDBOX_NAMESPACE, LABEL_SANDBOX_WORKSPACE};

/// The Ready condition of a container in `state` (Docker's state names): status, reason,
/// message, and whether the sandbox is being deleted. The reasons are OpenShell's Docker
/// driver's.
pub fn ready_condition(state: &str) -> (&'static str, &'static str, &'static str, bool) {
    match state {
        "running" => ("True", "BackendReady", "Container is running", false),
        "created" => ("False", "Starting", "Container created", false),
        "restarting" => ("False", "ContainerRestarting", "Container is restarting after a failure", false),
        "removing" => ("False", "Deleting", "Container is being removed", true),
        "paused" => ("False", "ContainerPaused", "Container is paused", false),
        "exited" => ("False", "ContainerExited", "Container exited", false),
        "dead" => ("False", "ContainerDead", "Container is dead", false),
        _ => ("False", "Starting", "Container state is unknown", false),
    }
}

pub fn instance_id(id: &str, short_ids: bool) -> String {
    if short_ids {
        id.chars().take(12).collect()
    } else {
        id.to_string()
    }
}

fn snapshot(
    labels: &HashMap<String, String>,
    container_id: &str,
    container_name: Option<&str>,
    state: &str,
    short_ids: bool,
) -> Option<DriverSandbox> {
    let id = labels.get(LABEL_SANDBOX_ID)?.clone();
    let name = labels.get(LABEL_SANDBOX_NAME)?.clone();
    let (status, reason, message, deleting) = ready_condition(state);
    let sandbox_name = container_name
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| name.clone());
    Some(DriverSandbox {
        id,
        name,
        namespace: labels.get(LABEL_SANDBOX_NAMESPACE).cloned().unwrap_or_default(),
        spec: None,
        status: Some(DriverSandboxStatus {
            sandbox_name,
            instance_id: instance_id(container_id, short_ids),
            agent_fd: String::new(),
            sandbox_fd: String::new(),
            conditions: vec![DriverCondition {
                r#type: "Ready".to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time: String::new(),
            }],
            deleting,
        }),
        workspace: labels.get(LABEL_SANDBOX_WORKSPACE).cloned().unwrap_or_default(),
    })
}

pub fn from_summary(summary: &ContainerSummary, short_ids: bool) -> Option<DriverSandbox> {
    let state = summary.state.map(|s| s.to_string()).unwrap_or_default();
    snapshot(
        summary.labels.as_ref()?,
        summary.id.as_deref().unwrap_or_default(),
        summary.names.as_ref().and_then(|names| names.first()).map(String::as_str),
        &state,
        short_ids,
    )
}

pub fn from_inspect(inspect: &ContainerInspectResponse, short_ids: bool) -> Option<DriverSandbox> {
    let labels = inspect.config.as_ref()?.labels.as_ref()?;
    let state = inspect
        .state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default();
    snapshot(
        labels,
        inspect.id.as_deref().unwrap_or_default(),
        inspect.name.as_deref(),
        &state,
        short_ids,
    )
}

/// One snapshot per sandbox id, filled in list order: when several containers carry one
/// sandbox's id, the one listed LAST wins (OpenShell's Docker driver inserts each listed
/// container into a map keyed by the sandbox-id label).
pub fn by_sandbox(list: &[ContainerSummary], short_ids: bool) -> BTreeMap<String, DriverSandbox> {
    let mut map = BTreeMap::new();
    for sandbox in list.iter().filter_map(|c| from_summary(c, short_ids)) {
        map.insert(sandbox.id.clone(), sandbox);
    }
    map
}

pub fn sandbox_event(sandbox: DriverSandbox) -> WatchSandboxesEvent {
    WatchSandboxesEvent {
        payload: Some(watch_sandboxes_event::Payload::Sandbox(WatchSandboxesSandboxEvent {
            sandbox: Some(sandbox),
        })),
    }
}

pub fn deleted_event(sandbox_id: String) -> WatchSandboxesEvent {
    WatchSandboxesEvent {
        payload: Some(watch_sandboxes_event::Payload::Deleted(WatchSandboxesDeletedEvent { sandbox_id })),
    }
}

pub fn platform_event(sandbox_id: &str, kind: &str, reason: &str, message: String) -> WatchSandboxesEvent {
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    WatchSandboxesEvent {
        payload: Some(watch_sandboxes_event::Payload::PlatformEvent(WatchSandboxesPlatformEvent {
            sandbox_id: sandbox_id.to_string(),
            event: Some(DriverPlatformEvent {
                timestamp_ms,
                source: "docker".to_string(),
                r#type: kind.to_string(),
                reason: reason.to_string(),
                message,
                metadata: HashMap::new(),
            }),
        })),
    }
}

/// What one line of the log says of a stream message.
pub fn describe(event: &WatchSandboxesEvent) -> String {
    match &event.payload {
        Some(watch_sandboxes_event::Payload::Sandbox(e)) => match &e.sandbox {
            Some(s) => {
                let status = s.status.as_ref();
                let instance = status.map(|st| crate::engine::short(&st.instance_id)).unwrap_or_default();
                let ready = status
                    .and_then(|st| st.conditions.first())
                    .map(|c| format!("{} {}", c.status, c.reason))
                    .unwrap_or_default();
                format!("sandbox {} instance={instance} Ready={ready}", s.id)
            }
            None => "sandbox (empty)".to_string(),
        },
        Some(watch_sandboxes_event::Payload::Deleted(e)) => format!("deleted {}", e.sandbox_id),
        Some(watch_sandboxes_event::Payload::PlatformEvent(e)) => format!(
            "platform_event {} {}",
            e.sandbox_id,
            e.event.as_ref().map(|p| p.reason.as_str()).unwrap_or_default()
        ),
        None => "empty".to_string(),
    }
}
