//! A custom authentication and authorization hook with typed options: users and passwords
//! from [`UserAuthOptions`], each user may publish only under `users/<name>/` and read
//! everything but `$SYS`. Its `init` refuses an empty user list, so a misconfiguration stops
//! the server from being built.
//!
//! `cargo run -p moco --example auth_hook` serves until Ctrl-C (user `alice`, password
//! `wonderland`); `--demo` checks a refusal and an allowed round trip, then exits.

mod support;

use std::collections::HashMap;

use moco_engine::codec::Connect;
use moco_engine::hooks::{Access, ClientInfo, Event, Hook, HookError};
use moco_engine::{Options, Server};
use moco_transport::TcpListener;

/// The hook's typed options.
#[derive(Debug, Clone, Default)]
struct UserAuthOptions {
    /// User name → password.
    users: HashMap<String, String>,
}

struct UserAuth {
    options: UserAuthOptions,
}

impl UserAuth {
    fn new(options: UserAuthOptions) -> Self {
        UserAuth { options }
    }
}

impl Hook for UserAuth {
    fn id(&self) -> &str {
        "user-auth"
    }

    fn provides(&self, event: Event) -> bool {
        matches!(event, Event::OnConnectAuthenticate | Event::OnAclCheck)
    }

    fn init(&self, _options: &Options) -> Result<(), HookError> {
        if self.options.users.is_empty() {
            return Err("user-auth: no users configured".into());
        }
        Ok(())
    }

    fn on_connect_authenticate(&self, _client: &ClientInfo, connect: &Connect) -> bool {
        let (Some(user), Some(password)) = (&connect.username, &connect.password) else {
            return false;
        };
        self.options
            .users
            .get(&**user)
            .is_some_and(|p| p.as_bytes() == &password[..])
    }

    fn on_acl_check(&self, client: &ClientInfo, topic: &str, access: Access) -> bool {
        match access {
            Access::Read => !topic.starts_with('$'),
            Access::Write => client
                .username
                .as_deref()
                .is_some_and(|u| topic.starts_with(&format!("users/{u}/"))),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = UserAuthOptions {
        users: HashMap::from([("alice".to_owned(), "wonderland".to_owned())]),
    };
    // An empty user list is refused by the hook's init.
    let refused = Server::builder()
        .hook(UserAuth::new(UserAuthOptions::default()))
        .try_build();
    assert!(refused.is_err());

    let mut server = Server::builder().hook(UserAuth::new(options)).try_build()?;
    let listener = TcpListener::bind(support::listen_addr()).await?;
    let addr = listener.local_addr()?;
    server.add_listener("tcp", listener);
    server.serve();

    if support::demo() {
        let bad = support::connect(addr, "mallory", Some(("alice", "guess"))).await;
        support::check(bad.is_err(), "a wrong password is refused")?;
        let mut alice = support::connect(addr, "alice-1", Some(("alice", "wonderland"))).await?;
        alice.subscribe("users/#").await?;
        alice.publish("users/bob/inbox", b"not mine").await?;
        alice.publish("users/alice/status", b"online").await?;
        let (topic, payload) = alice.next().await?;
        support::check(
            topic == "users/alice/status" && payload == b"online",
            "alice may write only under users/alice/",
        )?;
        println!("demo ok");
    } else {
        support::until_ctrl_c(addr).await?;
    }
    server.shutdown().await;
    Ok(())
}
