//! Malformed, truncated, unknown and oversized input: the broker answers or
//! closes that one connection and keeps serving the others.

use std::time::Duration;

use lasthop_broker::client::{Message, Producer, ProducerConfig};
use lasthop_broker::protocol::{self, ErrorCode, KIND_REQUEST, Request, Response};
use lasthop_broker::{BrokerConfig, RunningBroker, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn broker(dir: &std::path::Path) -> RunningBroker {
    server::start(BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.to_owned(),
        max_message_size: 1024,
        ..BrokerConfig::default()
    })
    .await
    .unwrap()
}

/// A normal send still works: the broker kept serving.
async fn still_serving(b: &RunningBroker) {
    let p = Producer::new(ProducerConfig {
        retries: 0,
        ..ProducerConfig::new(b.addr.to_string())
    });
    p.send(Message {
        topic: "t".into(),
        body: b"ok".to_vec(),
        ..Default::default()
    })
    .await
    .expect("broker still serves");
}

/// Reads until the broker closes the connection; true if it did.
async fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn raw_frame(version: u8, kind: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut f = ((10 + body.len()) as u32).to_le_bytes().to_vec();
    f.push(version);
    f.push(kind);
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(body);
    f
}

async fn read_response(stream: &mut TcpStream) -> (u64, Response) {
    let frame = protocol::read_frame(stream, 1 << 20).await.unwrap();
    (frame.request_id, postcard::from_bytes(&frame.body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lengths_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    for length in [3u32, u32::MAX] {
        let mut s = TcpStream::connect(b.addr).await.unwrap();
        s.write_all(&length.to_le_bytes()).await.unwrap();
        assert!(closed_by_broker(&mut s).await, "length {length}");
        still_serving(&b).await;
    }
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_and_a_vanishing_client_leave_the_broker_serving() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    s.write_all(&100u32.to_le_bytes()).await.unwrap();
    s.write_all(&[1, 0, 1, 2, 3]).await.unwrap();
    drop(s); // gone mid-frame
    // A long-polling pull whose client disappears before the answer.
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    let pull = Request::Pull {
        group: "g".into(),
        topic: "t".into(),
        queue_id: 0,
        offset: 0,
        max: 1,
        wait_ms: 500,
    };
    s.write_all(&protocol::encode_frame(KIND_REQUEST, 1, &pull))
        .await
        .unwrap();
    drop(s);
    still_serving(&b).await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_requests_get_an_error_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    // Variant 99 of Request does not exist.
    s.write_all(&raw_frame(protocol::VERSION, KIND_REQUEST, 7, &[99, 1, 2]))
        .await
        .unwrap();
    let (id, response) = read_response(&mut s).await;
    assert_eq!(id, 7);
    assert!(
        matches!(
            response,
            Response::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{response:?}"
    );
    let query = Request::QueryOffset {
        group: "g".into(),
        topic: "t".into(),
        queue_id: 0,
    };
    s.write_all(&protocol::encode_frame(KIND_REQUEST, 8, &query))
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await, (8, Response::Offset(None)));
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_protocol_version_is_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let mut s = TcpStream::connect(b.addr).await.unwrap();
    s.write_all(&raw_frame(9, KIND_REQUEST, 1, &[]))
        .await
        .unwrap();
    let (_, response) = read_response(&mut s).await;
    let Response::Error {
        code: ErrorCode::BadRequest,
        message,
    } = response
    else {
        panic!("{response:?}")
    };
    assert!(message.contains("version 9"), "{message}");
    assert!(closed_by_broker(&mut s).await);
    still_serving(&b).await;
    b.shutdown().await.unwrap();
}
