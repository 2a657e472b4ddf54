//! A stand-in for ECS's task metadata endpoint (version 4) on loopback. On ECS the
//! daemon reads its task's ARN from `$ECS_CONTAINER_METADATA_URI_V4/task` and takes
//! the task id as its process value (the second half of its lease owner), so two
//! tasks of one service, as a rolling deployment runs them, are two owners. Each
//! task here gets its own base URI on one server.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The variable ECS sets in every container of a task.
const METADATA_VAR: &str = "ECS_CONTAINER_METADATA_URI_V4";

pub struct TaskMetadata {
    port: u16,
    server: JoinHandle<()>,
}

impl TaskMetadata {
    /// Serves `GET /v4/<task id>/task` with that task's ARN. Needs a tokio runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or_default();
                    let task = path
                        .strip_prefix("/v4/")
                        .and_then(|p| p.strip_suffix("/task"))
                        .filter(|id| !id.is_empty() && !id.contains('/'));
                    let (status, body) = match task {
                        Some(id) => ("200 OK", task_document(id)),
                        None => ("404 Not Found", "{}".to_owned()),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { port, server }
    }

    /// The environment ECS gives a container of task `task_id`.
    pub fn env(&self, task_id: &str) -> (&'static str, String) {
        (
            METADATA_VAR,
            format!("http://127.0.0.1:{}/v4/{task_id}", self.port),
        )
    }
}

/// The part of a task metadata document the daemon reads (and a little more, as ECS
/// sends it).
fn task_document(task_id: &str) -> String {
    serde_json::json!({
        "Cluster": "arn:aws:ecs:ap-northeast-1:123456789012:cluster/monitors",
        "TaskARN": format!("arn:aws:ecs:ap-northeast-1:123456789012:task/monitors/{task_id}"),
        "Family": "failover-monitor",
        "Revision": "7",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
    })
    .to_string()
}

impl Drop for TaskMetadata {
    fn drop(&mut self) {
        self.server.abort();
    }
}
