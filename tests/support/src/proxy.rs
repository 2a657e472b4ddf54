//! A TCP forwarder on loopback in front of one region, one per monitor instance, so
//! that each instance's way to the region can be cut on its own (the instance sees the
//! region down, the others do not).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<a new port> to 127.0.0.1:`target`. Needs a tokio runtime.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        let cut = Arc::new(AtomicBool::new(false));
        // A std Mutex: held only to push or drain, never across an await.
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (c, cs) = (cut.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound); // refused, as far as the client can tell
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                lock(&cs).push(h.abort_handle());
            }
        });
        Self {
            port,
            cut,
            conns,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection through it, and refuses every new one from now on.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in lock(&self.conns).drain(..) {
            h.abort();
        }
    }
}

/// The connection list, even after a panic elsewhere poisoned its lock.
fn lock(conns: &Mutex<Vec<AbortHandle>>) -> std::sync::MutexGuard<'_, Vec<AbortHandle>> {
    conns
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for h in lock(&self.conns).drain(..) {
            h.abort();
        }
    }
}
