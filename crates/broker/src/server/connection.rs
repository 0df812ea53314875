//! One task per connection: read frames, run each request in its own task
//! (a long-polling pull must not hold up a send), write responses as they
//! finish. A frame that cannot be read closes the connection with a logged
//! reason; a frame that reads but does not decode gets an error response.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::Broker;
use super::handlers::handle;
use crate::protocol::{
    self, ErrorCode, FrameError, KIND_REQUEST, KIND_RESPONSE, Request, Response,
};

/// Frame bytes beyond the message body (head, names, properties).
const FRAME_OVERHEAD: usize = 64 << 10;

pub(crate) async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let mut stopping = broker.stopping.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(broker.clone(), stream, peer));
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = stopping.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let max_frame = broker.config.max_message_size + FRAME_OVERHEAD;
    let mut requests = JoinSet::new();
    let mut stopping = broker.stopping.clone();
    loop {
        let frame = tokio::select! {
            frame = protocol::read_frame(&mut reader, max_frame) => frame,
            _ = stopping.wait_for(|s| *s) => break,
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed) => break,
            Err(e) => {
                tracing::warn!(%peer, reason = %e, "closing connection");
                break;
            }
        };
        if frame.version != protocol::VERSION || frame.kind != KIND_REQUEST {
            let reason = format!(
                "unsupported frame version {} kind {}",
                frame.version, frame.kind
            );
            tracing::warn!(%peer, %reason, "closing connection");
            respond(
                &writer,
                frame.request_id,
                &Response::Error {
                    code: ErrorCode::BadRequest,
                    message: reason,
                },
            )
            .await;
            break;
        }
        let request = match postcard::from_bytes::<Request>(&frame.body) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(%peer, reason = %e, "malformed or unknown request");
                let message = format!("malformed or unknown request: {e}");
                respond(
                    &writer,
                    frame.request_id,
                    &Response::Error {
                        code: ErrorCode::BadRequest,
                        message,
                    },
                )
                .await;
                continue;
            }
        };
        if let Request::RegisterProducer { group } = &request {
            broker.transactions.register(group, &writer);
            respond(&writer, frame.request_id, &Response::Committed).await;
            continue;
        }
        let (broker, writer) = (broker.clone(), writer.clone());
        requests.spawn(async move {
            let response = handle(&broker, request).await;
            respond(&writer, frame.request_id, &response).await;
        });
    }
    // Requests already read are answered before the connection closes.
    while requests.join_next().await.is_some() {}
    let _ = writer.lock().await.shutdown().await;
}

async fn respond(writer: &Mutex<OwnedWriteHalf>, request_id: u64, response: &Response) {
    let frame = protocol::encode_frame(KIND_RESPONSE, request_id, response);
    let mut w = writer.lock().await;
    if let Err(e) = protocol::write_frame(&mut *w, &frame).await {
        tracing::debug!(error = %e, "client went away before its response");
    }
}
