//! The sandbox's two audited uses of `unsafe`: the `pre_exec` hook that puts the child
//! into its cgroup, network namespace, rlimits and user between fork and exec, and the
//! `ioctl` that brings a new network namespace's loopback interface up. Everything else
//! in the sandbox is safe code.

#![allow(unsafe_code)]

use std::{
    fs::File,
    io::{self, Write},
    net::{TcpListener, UdpSocket},
    os::fd::{AsRawFd, OwnedFd},
};

use nix::{
    sched::{setns, unshare, CloneFlags},
    sys::resource::{setrlimit, Resource},
    unistd::{setgid, setgroups, setuid, Gid, Uid},
};
use process_wrap::tokio::{TokioCommandWrap, TokioCommandWrapper};
use tokio::process::Command;

/// What the child does to itself between fork and exec. Everything is prepared (files
/// opened, numbers computed) in the parent, so the hook only makes system calls.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    /// `cgroup.procs` of each hierarchy to join (opened for writing, close-on-exec).
    pub(crate) cgroup_procs: Vec<File>,
    /// The network namespace to join.
    pub(crate) netns: Option<OwnedFd>,
    /// Rlimits as (resource, soft, hard).
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    /// Run as this uid and gid (after everything that needs privileges).
    pub(crate) run_as: Option<(u32, u32)>,
}

impl ChildSetup {
    pub(crate) fn is_empty(&self) -> bool {
        self.cgroup_procs.is_empty()
            && self.netns.is_none()
            && self.rlimits.is_empty()
            && self.run_as.is_none()
    }
}

impl TokioCommandWrapper for ChildSetup {
    fn pre_spawn(&mut self, command: &mut Command, _core: &TokioCommandWrap) -> io::Result<()> {
        let setup = std::mem::take(self);
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed. It makes system calls only (write, setns,
        // setrlimit, setgroups, setgid, setuid) on descriptors and values prepared in the
        // parent; it allocates nothing, takes no lock and formats nothing (`write_all` of
        // a borrowed one-byte slice on a `&File` is a plain write(2) loop).
        unsafe {
            command.pre_exec(move || {
                for procs in &setup.cgroup_procs {
                    // "0" moves the writing process (the kernel's rule for cgroup.procs,
                    // v1 and v2 alike).
                    (&*procs).write_all(b"0")?;
                }
                if let Some(ns) = &setup.netns {
                    setns(ns, CloneFlags::CLONE_NEWNET)?;
                }
                for &(resource, soft, hard) in &setup.rlimits {
                    setrlimit(resource, soft, hard)?;
                }
                if let Some((uid, gid)) = setup.run_as {
                    setgroups(&[Gid::from_raw(gid)])?;
                    setgid(Gid::from_raw(gid))?;
                    setuid(Uid::from_raw(uid))?;
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// A new network namespace with `lo` up and, when `port` is given, a listener on
/// `127.0.0.1:port` inside it. Made on a short-lived thread (namespaces belong to
/// threads), so this process's own network is untouched; the returned descriptor and
/// socket keep the namespace alive. Needs CAP_SYS_ADMIN.
pub(crate) fn private_netns(port: Option<u16>) -> io::Result<(OwnedFd, Option<TcpListener>)> {
    let thread = std::thread::Builder::new()
        .name("claude-code-netns".into())
        .spawn(move || -> io::Result<(OwnedFd, Option<TcpListener>)> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            loopback_up()?;
            let listener = port
                .map(|port| TcpListener::bind(("127.0.0.1", port)))
                .transpose()?;
            let ns = File::open("/proc/thread-self/ns/net")?;
            Ok((ns.into(), listener))
        })?;
    thread
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    let fd = socket.as_raw_fd();
    // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as nix::libc::c_char;
    }
    // SAFETY: `fd` is an open socket for the whole call and `req` a valid, initialised
    // `ifreq` that the kernel reads and writes within its size; SIOCGIFFLAGS and
    // SIOCSIFFLAGS use exactly that layout. Reading the `ifru_flags` union member is
    // valid after SIOCGIFFLAGS wrote it.
    unsafe {
        if nix::libc::ioctl(fd, nix::libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |=
            (nix::libc::IFF_UP | nix::libc::IFF_RUNNING) as nix::libc::c_short;
        if nix::libc::ioctl(fd, nix::libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
