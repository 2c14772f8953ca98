//! The WebSocket helpers against tungstenite's own client side, over in-memory pipes: the
//! client's handshake accepts our 101; it reads our `1`/`0` frames and our close; our
//! parser takes its masked text, binary, ping (→ pong) and close (→ reply), whole or byte
//! by byte; an unmasked frame gets a 1002 close.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

use tether_broker::ws::{
    accept_key, availability_frame, check_upgrade, close_frame, handshake_response, text_frame,
    FeedSocket, FeedState, UpgradeError,
};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::Message;

/// Both directions of a connection, as seen by the client.
#[derive(Default)]
struct Wire {
    to_client: VecDeque<u8>,
    to_server: Vec<u8>,
}

#[derive(Clone, Default)]
struct ClientEnd(Rc<RefCell<Wire>>);

impl Read for ClientEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = self.0.borrow_mut();
        if w.to_client.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        w.to_client.read(buf)
    }
}

impl Write for ClientEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().to_server.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ClientEnd {
    fn deliver(&self, bytes: &[u8]) {
        self.0.borrow_mut().to_client.extend(bytes);
    }
    fn sent(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().to_server)
    }
}

fn client() -> (WebSocket<ClientEnd>, ClientEnd) {
    let end = ClientEnd::default();
    let ws = WebSocket::from_raw_socket(end.clone(), Role::Client, None);
    (ws, end)
}

fn read_text(ws: &mut WebSocket<ClientEnd>) -> String {
    match ws.read() {
        Ok(Message::Text(t)) => t.as_str().to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[test]
fn accept_key_matches_rfc_6455() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn tungstenite_client_accepts_our_handshake() {
    let end = ClientEnd::default();
    let mid = match tungstenite::client::client("ws://broker.test/", end.clone()) {
        Err(HandshakeError::Interrupted(mid)) => mid,
        other => panic!(
            "the client should wait for our answer: {:?}",
            other.map(|_| ())
        ),
    };
    let request = String::from_utf8(end.sent()).expect("utf-8 request");
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    assert!(
        req.parse(request.as_bytes())
            .map(|s| s.is_complete())
            .unwrap_or(false),
        "{request}"
    );
    let pairs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let key = check_upgrade(pairs)
        .expect("valid upgrade")
        .expect("is an upgrade");
    end.deliver(handshake_response(&key).as_bytes());
    let (mut ws, response) = mid
        .handshake()
        .map_err(|e| format!("{e}"))
        .expect("accepted");
    assert_eq!(response.status(), 101);

    let mut feed = FeedSocket::new("test", true);
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "1");
    assert!(!feed.update(true), "no change, nothing sent");
    assert!(feed.update(false));
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "0");
}

#[test]
fn check_upgrade_sorts_requests() {
    let plain: [(&str, &[u8]); 1] = [("Host", b"x")];
    assert_eq!(check_upgrade(plain), Ok(None));
    let no_key: [(&str, &[u8]); 3] = [
        ("Upgrade", b"WebSocket"),
        ("Connection", b"keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", b"13"),
    ];
    assert_eq!(check_upgrade(no_key), Err(UpgradeError::MissingKey));
    let old: [(&str, &[u8]); 4] = [
        ("upgrade", b"websocket"),
        ("connection", b"upgrade"),
        ("sec-websocket-version", b"8"),
        ("sec-websocket-key", b"k"),
    ];
    assert_eq!(check_upgrade(old).map_err(|e| e.status()), Err(426));
}

#[test]
fn standalone_frames_parse_on_the_client() {
    let (mut ws, end) = client();
    end.deliver(&availability_frame(true));
    end.deliver(&availability_frame(false));
    end.deliver(&text_frame("hello"));
    assert_eq!(read_text(&mut ws), "1");
    assert_eq!(read_text(&mut ws), "0");
    assert_eq!(read_text(&mut ws), "hello");
    end.deliver(&close_frame(1001, "going away"));
    match ws.read() {
        Ok(Message::Close(Some(f))) => {
            assert_eq!(f.code, CloseCode::Away);
            assert_eq!(f.reason.as_str(), "going away");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[test]
fn client_text_binary_ping_and_close() {
    let (mut ws, end) = client();
    let mut feed = FeedSocket::new("test", false);
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "0");

    ws.send(Message::text("ignored")).expect("send text");
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .expect("send binary");
    assert_eq!(feed.receive(&end.sent()), FeedState::Open);
    assert!(!feed.has_output(), "text and binary are only logged");

    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .expect("send ping");
    // Byte by byte: the parser keeps partial frames.
    for b in end.sent() {
        assert_eq!(feed.receive(&[b]), FeedState::Open);
    }
    end.deliver(&feed.take_output());
    match ws.read() {
        Ok(Message::Pong(p)) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected the pong, got {other:?}"),
    }

    ws.close(None).expect("client close");
    assert_eq!(feed.receive(&end.sent()), FeedState::Closed);
    assert!(!feed.update(true), "nothing is sent after close");
    end.deliver(&feed.take_output());
    match ws.read() {
        Ok(Message::Close(None)) => {}
        other => panic!("expected our close reply, got {other:?}"),
    }
    // The handshake is complete on the client's side; it only waits for TCP's end now.
    assert!(!ws.can_write());
    assert!(ws.send(Message::text("late")).is_err());
}

#[test]
fn server_close_waits_for_the_reply() {
    let (mut ws, end) = client();
    let mut feed = FeedSocket::new("test", true);
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "1");
    feed.close(1001, "shutting down");
    assert_eq!(feed.state(), FeedState::Closing);
    end.deliver(&feed.take_output());
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected our close, got {other:?}"),
    }
    let _ = ws.flush(); // the client's reply
    assert_eq!(feed.receive(&end.sent()), FeedState::Closed);
}

#[test]
fn unmasked_client_frame_is_a_protocol_error() {
    let (mut ws, end) = client();
    let mut feed = FeedSocket::new("test", true);
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "1");
    // A server-style (unmasked) frame sent by a client.
    assert_eq!(feed.receive(&text_frame("sneaky")), FeedState::Closed);
    end.deliver(&feed.take_output());
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Protocol),
        other => panic!("expected a 1002 close, got {other:?}"),
    }
}

#[test]
fn oversized_client_message_is_refused_with_1009() {
    let (mut ws, end) = client();
    let mut feed = FeedSocket::new("test", true);
    end.deliver(&feed.take_output());
    assert_eq!(read_text(&mut ws), "1");
    ws.send(Message::binary(vec![0u8; 100 * 1024]))
        .expect("send");
    assert_eq!(feed.receive(&end.sent()), FeedState::Closed);
    end.deliver(&feed.take_output());
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}
