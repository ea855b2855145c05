//! A TCP proxy that a test controls: it forwards a local port to an upstream address, and can
//! be cut (it stops listening and drops every open connection, so the port refuses) and
//! restored on the same port. Used to make a service unreachable for one client without
//! stopping the shared server.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A cuttable TCP proxy on 127.0.0.1.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: impl Into<String>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let upstream = upstream.into();
        Ok(Self {
            port,
            task: Some(tokio::spawn(forward(listener, upstream.clone()))),
            upstream,
        })
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops listening and drops the open connections: the port refuses until
    /// [`restore`](Self::restore).
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) -> io::Result<()> {
        if self.task.is_none() {
            let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
            self.task = Some(tokio::spawn(forward(listener, self.upstream.clone())));
        }
        Ok(())
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts and forwards until aborted; aborting drops every forwarded connection with it.
async fn forward(listener: TcpListener, upstream: String) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        connections.spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                let _ = client.shutdown().await;
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        while connections.try_join_next().is_some() {}
    }
}
