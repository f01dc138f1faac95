//! The `moco` binary serves MQTT with anonymous clients on loopback, and refuses to listen
//! beyond loopback without a configuration.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn binary_serves_anonymous_clients_on_loopback() {
    let port = free_port();
    let _child = Kill(
        Command::new(env!("CARGO_BIN_EXE_moco"))
            .args(["--tcp", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for the listener.
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "moco did not start listening");

    let mut opts = rumqttc::MqttOptions::new("bin-test", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 10);
    client
        .subscribe("bin/t", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("bin/t", rumqttc::QoS::AtLeastOnce, false, "hi")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = el.poll().await.unwrap()
            {
                return p;
            }
        }
    })
    .await
    .expect("no message");
    assert_eq!(&got.payload[..], b"hi");
}

#[test]
fn binary_refuses_non_loopback_without_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_moco"))
        .args(["--tcp", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
