//! A client connection: requests are written with fresh ids, a reader task
//! hands each response to the request that waits for it. When the connection
//! breaks, every waiting request fails at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::protocol::{self, KIND_REQUEST, KIND_RESPONSE, Request, Response};

/// Largest response frame a client accepts.
const MAX_RESPONSE: usize = 256 << 20;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The broker could not be reached.
    #[error("cannot connect to broker {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The connection broke before the response arrived.
    #[error("connection to broker lost")]
    Disconnected,
    /// No response within the timeout; the request may still take effect.
    #[error("no response from broker within {0:?}")]
    Timeout(Duration),
    /// The broker answered with an error.
    #[error("broker refused the request: {0}")]
    Refused(String),
}

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// One TCP connection to a broker.
#[derive(Debug)]
pub struct Connection {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    broken: Arc<AtomicBool>,
    closed: watch::Receiver<bool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
        Self::connect_with(addr, timeout, None).await
    }

    /// Like [`Connection::connect`]; requests the broker sends on this
    /// connection (transaction check-backs) go to `incoming`.
    pub async fn connect_with(
        addr: &str,
        timeout: Duration,
        incoming: Option<mpsc::UnboundedSender<Request>>,
    ) -> Result<Connection, ClientError> {
        let connect = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match connect {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    reason: format!("timed out after {timeout:?}"),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let pending: Pending = Arc::default();
        let broken = Arc::new(AtomicBool::new(false));
        let (closed_tx, closed) = watch::channel(false);
        let reader_pending = pending.clone();
        let reader_broken = broken.clone();
        let reader = tokio::spawn(async move {
            while let Ok(frame) = protocol::read_frame(&mut reader, MAX_RESPONSE).await {
                if frame.kind == KIND_REQUEST {
                    if let (Some(tx), Ok(request)) =
                        (&incoming, postcard::from_bytes::<Request>(&frame.body))
                    {
                        let _ = tx.send(request);
                    }
                    continue;
                }
                if frame.kind != KIND_RESPONSE {
                    break;
                }
                let Ok(response) = postcard::from_bytes::<Response>(&frame.body) else {
                    break;
                };
                if let Some(tx) = reader_pending
                    .lock()
                    .expect("pending lock")
                    .remove(&frame.request_id)
                {
                    let _ = tx.send(response);
                }
            }
            reader_broken.store(true, Ordering::Release);
            // Dropping the senders fails every waiting request.
            reader_pending.lock().expect("pending lock").clear();
            let _ = closed_tx.send(true);
        });
        Ok(Connection {
            writer: Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            broken,
            closed,
            reader,
        })
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Whether the connection has failed (a new one is needed).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its response.
    pub async fn request(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        if self.is_broken() {
            return Err(ClientError::Disconnected);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        let frame = protocol::encode_frame(KIND_REQUEST, id, request);
        let written = {
            let mut w = self.writer.lock().await;
            protocol::write_frame(&mut *w, &frame).await
        };
        if written.is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            self.broken.store(true, Ordering::Release);
            return Err(ClientError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Response::Error { code, message })) => {
                Err(ClientError::Refused(format!("{code:?}: {message}")))
            }
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }
}
