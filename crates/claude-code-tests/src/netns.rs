//! A network namespace for partition tests: a process started in it (`ip netns exec`)
//! reaches the host's loopback services only through one veth pair, which
//! [`Netns::cut`] takes down and [`Netns::heal`] brings back — a real partition, not a
//! paused process. The test itself reaches the namespace's own loopback through
//! [`Netns::forward`] (a socket made inside it), so cutting the link does not cut the
//! test off.
//!
//! Needs `ip` (iproute2, installed by `scripts/install-nats`) and the right to create
//! namespaces (root, as in CI); without them [`Netns::create`] panics with the reason:
//! the tests fail, they never skip.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use tokio::net::{TcpListener, TcpStream};

/// A network namespace with one veth pair to the host's namespace; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The host side of the veth pair.
    link: String,
    /// The host side's address (the namespace's way out).
    gateway: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let out = Command::new(ip_program())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run `ip {}`: {e}; run scripts/install-nats", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}; partition tests need root (CAP_NET_ADMIN)",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `ip` from `PATH`, `/usr/sbin` or `/sbin`.
pub fn ip_program() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("ip"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("ip (iproute2) is not installed: run scripts/install-nats"))
}

impl Netns {
    /// Creates a namespace with `lo` up and a veth pair: `10.213.N.1` on the host side,
    /// `10.213.N.2` inside (N differs per namespace of this process).
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 10_000) * 10 + n % 10;
        let subnet = (id % 250) as u8 + 1;
        let name = format!("cc-part-{id}");
        let link = format!("ccp{id}h");
        let inner = format!("ccp{id}n");
        // A namespace left by a killed earlier run of the same pid is replaced.
        let _ = Command::new(ip_program())
            .args(["netns", "del", &name])
            .output();
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name: name.clone(),
            link: link.clone(),
            gateway: Ipv4Addr::new(10, 213, subnet, 1),
        };
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.1/30"),
            "dev",
            &link,
        ]);
        ip(&["link", "set", &link, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("10.213.{subnet}.2/30"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &name, "link", "set", &inner, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host side's address, which processes in the namespace reach over the veth.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// A command run inside the namespace: `ip netns exec <name> <program>`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(ip_program());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Serves `target` (a loopback port *of the host*) on the gateway address, so that
    /// processes in the namespace reach it over the veth (and lose it when it is cut).
    pub async fn expose(&self, target: u16) -> SocketAddr {
        let listener = TcpListener::bind(SocketAddrV4::new(self.gateway, 0))
            .await
            .expect("bind on the gateway address");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        addr
    }

    /// Serves the namespace's `127.0.0.1:<port>` on the host's loopback (a port this
    /// returns), through sockets made inside the namespace: the test's way in, which a
    /// [`cut`](Self::cut) does not touch.
    pub async fn forward(&self, port: u16) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("addr");
        let ns = self.name.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let ns = ns.clone();
                tokio::spawn(async move {
                    let made = tokio::task::spawn_blocking(move || connect_inside(&ns, port)).await;
                    if let Ok(Ok(stream)) = made {
                        if let Ok(mut outbound) = TcpStream::from_std(stream) {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Takes the veth down: the namespace loses every address outside itself (packets are
    /// dropped, no connection is reset).
    pub fn cut(&self) {
        ip(&["link", "set", &self.link, "down"]);
    }

    /// Brings the veth back up.
    pub fn heal(&self) {
        ip(&["link", "set", &self.link, "up"]);
    }
}

/// Connects to `127.0.0.1:port` inside the namespace `ns`, from a thread of its own that
/// joins the namespace (a socket keeps the namespace it was made in).
fn connect_inside(ns: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
    let ns = std::fs::File::open(format!("/run/netns/{ns}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let stream = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread panicked")))
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new(ip_program())
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new(ip_program())
            .args(["link", "del", &self.link])
            .output();
    }
}
