//! A TCP proxy between clients and a broker that injects network faults at
//! frame boundaries: drop the next request of a kind (it never reaches the
//! broker), or drop the response to it (the broker acted, the client never
//! hears). Real sockets, real timeouts: the client sees exactly what a lost
//! packet or a cut connection would give it.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::protocol::{self, KIND_REQUEST, KIND_RESPONSE, Request};

const MAX_FRAME: usize = 256 << 20;

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Send,
    SendHalf,
    EndTransaction,
    Pull,
    CommitOffset,
}

impl RequestKind {
    fn matches(self, r: &Request) -> bool {
        matches!(
            (self, r),
            (RequestKind::Send, Request::Send(_))
                | (RequestKind::SendHalf, Request::SendHalf { .. })
                | (RequestKind::EndTransaction, Request::EndTransaction { .. })
                | (RequestKind::Pull, Request::Pull { .. })
                | (RequestKind::CommitOffset, Request::CommitOffset { .. })
        )
    }
}

/// A one-shot fault: it applies to the next matching request, then is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request is lost on the way to the broker.
    DropRequest(RequestKind),
    /// The broker handles the request; its response is lost.
    DropResponse(RequestKind),
}

#[derive(Debug, Default)]
struct State {
    faults: VecDeque<Fault>,
    applied: Vec<Fault>,
}

/// The running proxy.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = task_state.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, state).await;
                    }
                });
            }
        });
        Ok(FaultProxy { addr, state, task })
    }

    /// Arms a fault for the next matching request.
    pub fn inject(&self, fault: Fault) {
        self.state
            .lock()
            .expect("proxy lock")
            .faults
            .push_back(fault);
    }

    /// Faults that have taken effect, in order.
    pub fn applied(&self) -> Vec<Fault> {
        self.state.lock().expect("proxy lock").applied.clone()
    }
}

async fn relay(client: TcpStream, server: TcpStream, state: Arc<Mutex<State>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let dropped_responses: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let drops = dropped_responses.clone();
    let upstream = async {
        while let Ok(frame) = protocol::read_frame(&mut client_read, MAX_FRAME).await {
            if frame.kind == KIND_REQUEST
                && let Ok(request) = postcard::from_bytes::<Request>(&frame.body)
            {
                let mut s = state.lock().expect("proxy lock");
                let hit = s.faults.iter().position(|f| match f {
                    Fault::DropRequest(k) | Fault::DropResponse(k) => k.matches(&request),
                });
                if let Some(i) = hit {
                    let fault = s.faults.remove(i).expect("position");
                    s.applied.push(fault);
                    match fault {
                        Fault::DropRequest(_) => continue,
                        Fault::DropResponse(_) => {
                            drops.lock().expect("proxy lock").insert(frame.request_id);
                        }
                    }
                }
            }
            if server_write.write_all(&frame.to_bytes()).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        while let Ok(frame) = protocol::read_frame(&mut server_read, MAX_FRAME).await {
            if frame.kind == KIND_RESPONSE
                && dropped_responses
                    .lock()
                    .expect("proxy lock")
                    .remove(&frame.request_id)
            {
                continue;
            }
            if client_write.write_all(&frame.to_bytes()).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
