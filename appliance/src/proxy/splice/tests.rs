//! Real sockets on loopback: a client, the relay in the middle, a backend.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream as StdStream},
    time::{Duration, Instant},
};

use super::*;

/// A relay between a std client socket and a std backend socket: returns
/// (client end, backend end, the relay's task).
async fn triangle() -> (
    StdStream,
    StdStream,
    tokio::task::JoinHandle<io::Result<Moved>>,
) {
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let back = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = StdStream::connect(front.local_addr().unwrap()).unwrap();
    let (accepted, _) = front.accept().unwrap();
    let to_backend = StdStream::connect(back.local_addr().unwrap()).unwrap();
    let (backend, _) = back.accept().unwrap();
    for s in [&accepted, &to_backend] {
        s.set_nonblocking(true).unwrap();
    }
    let a = TcpStream::from_std(accepted).unwrap();
    let b = TcpStream::from_std(to_backend).unwrap();
    let task = tokio::spawn(async move { relay(&a, &b).await });
    for s in [&client, &backend] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    (client, backend, task)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// 16 MiB each way at once arrive intact, and the counts say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_both_ways_arrives_intact() {
    let (mut client, mut backend, task) = triangle().await;
    let (up, down) = (pattern(16 << 20, 1), pattern(16 << 20, 7));
    let (up2, down2) = (up.clone(), down.clone());
    let backend_side = std::thread::spawn(move || {
        let mut w = backend.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&down2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        backend.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    });
    let mut w = client.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&up2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got_down = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    })
    .await
    .unwrap();
    writer.join().unwrap();
    let got_up = backend_side.join().unwrap();
    assert!(got_up == up, "client to backend differs");
    assert!(got_down == down, "backend to client differs");
    let moved = task.await.unwrap().unwrap();
    assert_eq!(
        moved,
        Moved {
            to_backend: 16 << 20,
            to_client: 16 << 20
        }
    );
}

/// A client that half-closes (sends its request, then FIN) still gets the
/// whole answer the backend sends after seeing that FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_passes_through_and_the_other_way_goes_on() {
    let (mut client, mut backend, task) = triangle().await;
    let answer = tokio::task::spawn_blocking(move || {
        client.write_all(b"request").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    });
    let served = tokio::task::spawn_blocking(move || {
        let mut req = Vec::new();
        backend.read_to_end(&mut req).unwrap(); // ends at the passed-on FIN
        backend.write_all(b"answer after your FIN").unwrap();
        drop(backend);
        req
    });
    assert_eq!(served.await.unwrap(), b"request");
    assert_eq!(answer.await.unwrap(), b"answer after your FIN");
    assert_eq!(
        task.await.unwrap().unwrap(),
        Moved {
            to_backend: 7,
            to_client: 21
        }
    );
}

/// A client that stops reading while the backend sends 8 MiB (more than
/// the socket buffers hold) stalls only that direction: the relay waits
/// for room instead of failing or dropping, and nothing is lost when the
/// client reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_nothing() {
    let (mut client, mut backend, task) = triangle().await;
    let body = pattern(8 << 20, 3);
    let sent = body.clone();
    let sender = std::thread::spawn(move || {
        backend.write_all(&sent).unwrap();
        backend.shutdown(Shutdown::Write).unwrap();
        backend
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        drop(client);
        got
    })
    .await
    .unwrap();
    assert!(got == body, "{} of {} bytes", got.len(), body.len());
    drop(sender.join().unwrap());
    let moved = task.await.unwrap().unwrap();
    assert_eq!(moved.to_client, 8 << 20);
}

/// A backend that dies mid-stream (reset) ends the relay at once, and the
/// client sees its connection end instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reset_mid_stream_ends_the_client_connection() {
    let (mut client, backend, task) = triangle().await;
    let mut b = backend.try_clone().unwrap();
    b.write_all(&pattern(100_000, 5)).unwrap();
    // Linger 0: close with RST, as a crashed backend's kernel would.
    socket2::SockRef::from(&backend)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(b);
    drop(backend);
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let r = client.read_to_end(&mut got);
        (r.is_ok(), got.len())
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "client hung");
    assert!(outcome.1 <= 100_000, "{outcome:?}");
    assert!(task.await.unwrap().is_err(), "the reset is reported");
}
